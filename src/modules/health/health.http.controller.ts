import { Controller, Get, HttpCode, Res, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import type { FastifyReply } from 'fastify';
import { InferenceEngine } from '../../domain/inference/inference-engine.port.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { SchedulerQueues } from '../../domain/inference/scheduler-queues.port.js';
import { ModelCatalog } from '../../domain/registry/model-catalog.port.js';
import { EventLoopMonitor } from './event-loop-monitor.js';
import { ServerReadiness } from './server-readiness.js';
import { SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from './server-identity.js';

/** Event-loop delay above which the server reports itself degraded (still serving). */
const DEGRADED_EVENT_LOOP_P99_MS = 500;

/**
 * KServe V2 liveness, readiness and server metadata, and a detailed health report (Terminus).
 * Live as soon as the process answers, even while models load: a liveness probe must never restart
 * a pod that is merely loading.
 */
@Controller()
export class HealthHttpController {
  constructor(
    private readonly registry: ModelCatalog,
    private readonly engine: InferenceEngine,
    private readonly schedulers: SchedulerQueues,
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly eventLoop: EventLoopMonitor,
    private readonly readiness: ServerReadiness,
  ) {}

  @Get('v2/health/live')
  @HttpCode(200)
  live(): void {}

  @Get('v2/health/ready')
  @HttpCode(200)
  ready(): void {
    const reason = this.readiness.notReadyReason();
    if (reason) throw new DomainError('SERVER.NOT_READY', reason);
  }

  @Get('v2')
  metadata() {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: SERVER_EXTENSIONS };
  }

  @Get('health')
  async details(@Res({ passthrough: true }) reply: FastifyReply) {
    try {
      return await this.health.check([() => this.models(), () => this.workers(), () => this.queues(), () => this.eventLoopDelay()]);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      reply.status(503);
      return error.getResponse();
    }
  }

  private models() {
    const models = Object.fromEntries(
      this.registry.all().map((model) => [
        model.name,
        model.versions.length === 0
          ? [{ version: null, state: 'UNAVAILABLE', reason: model.problem }]
          : model.versions.map((v) => ({ version: String(v.version), state: v.state, reason: v.reason, executionProvider: v.executionProvider })),
      ]),
    );
    const reason = this.readiness.notReadyReason();
    const check = this.indicators.check('models');
    return reason ? check.down({ reason, models }) : check.up({ models });
  }

  private workers() {
    const pools = this.engine.status();
    const check = this.indicators.check('workers');
    const empty = pools.filter((pool) => pool.instances === 0);
    return empty.length > 0 ? check.down({ reason: `no worker left for ${empty.map((p) => p.key).join(', ')}`, pools }) : check.up({ pools });
  }

  private queues() {
    return this.indicators.check('queues').up({ schedulers: this.schedulers.status() });
  }

  private eventLoopDelay() {
    const delay = this.eventLoop.summary();
    const check = this.indicators.check('event_loop');
    return delay.p99Ms > DEGRADED_EVENT_LOOP_P99_MS ? check.degraded(delay) : check.up(delay);
  }
}
