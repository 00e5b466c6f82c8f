import { Global, Module } from '@nestjs/common';
import { VersionTraffic } from '../../domain/registry/version-traffic.port.js';
import { Clock } from '../../domain/shared/clock.js';
import { SystemClock } from '../../infra/clock/system-clock.js';
import { GenerationSchedulers } from '../generation/generation-schedulers.js';
import { ModelVersionSchedulers } from './model-version-schedulers.js';

/**
 * The schedulers of the served versions, shared by the contexts: inference queues requests in
 * them, the registry drains them before it unloads a version, health reports them.
 */
@Global()
@Module({
  providers: [ModelVersionSchedulers, GenerationSchedulers, { provide: VersionTraffic, useExisting: ModelVersionSchedulers }, { provide: Clock, useClass: SystemClock }],
  exports: [ModelVersionSchedulers, GenerationSchedulers, VersionTraffic],
})
export class SchedulingModule {}
