import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { RegistryModule } from '../registry/registry.module.js';
import { EventLoopMonitor } from './event-loop-monitor.js';
import { ServerReadiness } from './server-readiness.js';
import { HealthGrpcController } from './health.grpc.controller.js';
import { HealthHttpController } from './health.http.controller.js';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), RegistryModule],
  controllers: [HealthHttpController, HealthGrpcController],
  providers: [EventLoopMonitor, ServerReadiness],
  exports: [ServerReadiness],
})
export class HealthModule {}
