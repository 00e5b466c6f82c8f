/**
 * Which version of which model: Triton's `<model>/<version>`. Contexts name a version with it
 * (breakers, limits, metrics, the runtime) instead of building and splitting that string.
 */
export class ModelVersionId {
  private constructor(
    readonly modelName: string,
    readonly version: number,
  ) {}

  static of(modelName: string, version: number): ModelVersionId {
    return new ModelVersionId(modelName, version);
  }

  equals(other: ModelVersionId): boolean {
    return this.modelName === other.modelName && this.version === other.version;
  }

  toString(): string {
    return `${this.modelName}/${this.version}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** Which instances of a version a runtime key names: its load, a reload beside it, or the check of an uploaded file. */
type Instances = { readonly kind: 'load' } | { readonly kind: 'reload'; readonly generation: number } | { readonly kind: 'upload-check' };

/**
 * The runtime's name for one set of loaded instances of a version. A version has one while it
 * serves; a reload loads a new set beside it under the next generation's key, and the check of an
 * uploaded file loads one of its own. Written once, here: `model/1`, `model/1#2`, `model/1#upload`.
 */
export class RuntimeKey {
  private readonly text: string;

  private constructor(
    readonly versionId: ModelVersionId,
    private readonly instances: Instances,
  ) {
    const suffix = instances.kind === 'load' ? '' : instances.kind === 'reload' ? `#${instances.generation}` : '#upload';
    this.text = `${versionId}${suffix}`;
  }

  /** The key of a version's first load. */
  static of(versionId: ModelVersionId): RuntimeKey {
    return new RuntimeKey(versionId, { kind: 'load' });
  }

  /** The key a version's reload number `reloads + 1` loads under (generation 2 is the first reload). */
  static reload(versionId: ModelVersionId, generation: number): RuntimeKey {
    if (!Number.isSafeInteger(generation) || generation < 2) throw new RangeError(`a reload's generation is an integer from 2, not ${generation}`);
    return new RuntimeKey(versionId, { kind: 'reload', generation });
  }

  /** The key under which an uploaded file of that version is loaded once, to check it, and released. */
  static uploadCheck(versionId: ModelVersionId): RuntimeKey {
    return new RuntimeKey(versionId, { kind: 'upload-check' });
  }

  get modelName(): string {
    return this.versionId.modelName;
  }

  get version(): number {
    return this.versionId.version;
  }

  /** The generation of a reload, 1 for a first load; undefined for an upload check. */
  get generation(): number | undefined {
    return this.instances.kind === 'load' ? 1 : this.instances.kind === 'reload' ? this.instances.generation : undefined;
  }

  /** Instances of that version, whichever load they come from. */
  isOf(versionId: ModelVersionId): boolean {
    return this.versionId.equals(versionId);
  }

  equals(other: RuntimeKey): boolean {
    return this.text === other.text;
  }

  /** The key as text: what maps are keyed by, and what logs and health reports show. */
  toString(): string {
    return this.text;
  }

  toJSON(): string {
    return this.text;
  }
}
