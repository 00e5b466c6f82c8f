import { Module } from '@nestjs/common';
import { TrafficRouter } from '../../domain/rollout/traffic-router.port.js';
import { RegistryModule } from '../registry/registry.module.js';
import { RolloutHttpController } from './manage-rollout/rollout.http.controller.js';
import { RolloutProgress } from './progress-rollouts/rollout-progress.js';
import { Rollouts } from './rollouts.js';
import { TakeVersionOutOfRoutingWhenUnavailable } from './take-version-out-of-routing-when-unavailable.handler.js';

/**
 * The rollout bounded context: for each request that names no version, which version serves it
 * (canary split, header rules, shadow), and progressive plans that advance or roll back by
 * themselves. The inference context asks it through the TrafficRouter port.
 */
@Module({
  imports: [RegistryModule],
  controllers: [RolloutHttpController],
  providers: [Rollouts, { provide: TrafficRouter, useExisting: Rollouts }, RolloutProgress, TakeVersionOutOfRoutingWhenUnavailable],
  exports: [TrafficRouter],
})
export class RolloutModule {}
