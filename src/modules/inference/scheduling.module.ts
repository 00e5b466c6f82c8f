import { Global, Module } from '@nestjs/common';
import { VersionTraffic } from '../../domain/registry/version-traffic.port.js';
import { SchedulerQueues } from '../../domain/inference/scheduler-queues.port.js';
import { Clock } from '../../domain/shared/clock.js';
import { SystemClock } from '../../infra/clock/system-clock.js';
import { GenerationSchedulers } from './generation-schedulers.js';
import { ModelVersionSchedulers } from './model-version-schedulers.js';
import { ServedVersionTraffic } from './served-version-traffic.js';

/**
 * The schedulers of the served versions, shared by the contexts: inference queues requests in
 * them, the registry drains them before it unloads a version, health reports them. Global for
 * that reason: four contexts reach them, through the VersionTraffic and SchedulerQueues ports.
 */
@Global()
@Module({
  providers: [ModelVersionSchedulers, GenerationSchedulers, { provide: VersionTraffic, useClass: ServedVersionTraffic }, { provide: SchedulerQueues, useExisting: ModelVersionSchedulers }, { provide: Clock, useClass: SystemClock }],
  exports: [ModelVersionSchedulers, GenerationSchedulers, VersionTraffic, SchedulerQueues, Clock],
})
export class SchedulingModule {}
