import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '../../../infra/config/app-config.js';
import { RolloutFigures } from '../../../domain/rollout/rollout-figures.port.js';
import { Leadership } from '../../../domain/shared/leadership.port.js';
import { Rollouts } from '../rollouts.js';

/**
 * The controller of progressive rollouts: every ROLLOUT_EVALUATION_INTERVAL_MS it judges each
 * active plan's current step on the figures the requests left (Rollout.evaluate), and the
 * decision (advance, promote, roll back) takes effect, is saved and is logged. One evaluation at a
 * time: a slow save or promotion never overlaps the next tick.
 *
 * Replicas (REDIS_URL): each leaves its figures of every rollout at each tick (RolloutFigures), and
 * only the one holding the judge's lease (Leadership) judges, on the figures of every replica; the
 * others follow its decisions through the rollout store. One server alone always judges.
 */
@Injectable()
export class RolloutProgress implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Rollout');
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly config: AppConfig,
    private readonly rollouts: Rollouts,
    private readonly leadership: Leadership,
    private readonly figures: RolloutFigures,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.tick(), this.config.ROLLOUT_EVALUATION_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  async tick(now = new Date()): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const active = this.rollouts.all().filter((rollout) => rollout.phase === 'ACTIVE' && rollout.spec.plan);
      for (const rollout of active) {
        await this.figures.publish(rollout.modelName, rollout.sample()).catch((error: Error) => this.logger.warn(`the figures of the rollout of '${rollout.modelName}' could not be shared: ${error.message}`));
      }
      if (active.length === 0 || !(await this.leadership.lead('rollout-judge'))) return;
      for (const rollout of active) {
        try {
          await this.rollouts.evaluate(rollout, now, await this.figures.fromOthers(rollout.modelName));
        } catch (error) {
          this.logger.error(`evaluating the rollout of '${rollout.modelName}' failed: ${(error as Error).message}`);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
