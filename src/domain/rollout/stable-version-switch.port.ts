/**
 * Port to what a promotion asks of the registry: the new stable version becomes the model's
 * default version (the hot swap, saved with the model's state). The registry context implements it.
 */
export abstract class StableVersionSwitch {
  /** Resolves once the swap is saved and routing follows it; throws (nothing changed) when it cannot be made. */
  abstract makeDefault(modelName: string, version: number): Promise<unknown>;
}
