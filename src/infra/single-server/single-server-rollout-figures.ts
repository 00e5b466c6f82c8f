import type { RolloutSample } from '../../domain/rollout/rollout.js';
import { RolloutFigures } from '../../domain/rollout/rollout-figures.port.js';

/** A server that shares its state with no other judges its rollouts on its own figures: there are no others. */
export class SingleServerRolloutFigures extends RolloutFigures {
  async publish(): Promise<void> {}

  async fromOthers(): Promise<readonly RolloutSample[]> {
    return [];
  }
}
