import type { RolloutSample } from './rollout.js';

/**
 * Port to where replicas leave what each counted of a rollout's current step, so that the one
 * server that judges the plan judges it on the figures of every replica.
 */
export abstract class RolloutFigures {
  /** Leaves this server's sample of the model's rollout (replacing its previous one). */
  abstract publish(modelName: string, sample: RolloutSample): Promise<void>;
  /** The samples the other servers left for the model's rollout. */
  abstract fromOthers(modelName: string): Promise<readonly RolloutSample[]>;
}
