import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '../../../infra/config/app-config.js';
import { Rollouts } from '../rollouts.js';

/**
 * The controller of progressive rollouts: every ROLLOUT_EVALUATION_INTERVAL_MS it judges each
 * active plan's current step on the figures the requests left (Rollout.evaluate), and the
 * decision (advance, promote, roll back) takes effect, is saved and is logged. One evaluation at a
 * time: a slow save or promotion never overlaps the next tick.
 */
@Injectable()
export class RolloutProgress implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Rollout');
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly config: AppConfig,
    private readonly rollouts: Rollouts,
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
      for (const rollout of this.rollouts.all()) {
        await this.rollouts.evaluate(rollout, now).catch((error: Error) => this.logger.error(`evaluating the rollout of '${rollout.modelName}' failed: ${error.message}`));
      }
    } finally {
      this.running = false;
    }
  }
}
