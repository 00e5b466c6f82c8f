import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../../infra/config/app-config.js';
import { ModelCatalog } from '../../domain/registry/model-catalog.port.js';

/**
 * Whether the server should receive traffic: not once it is shutting down (so that load balancers
 * stop sending while it drains), nor while the repository loads or (with STRICT_READINESS) a model
 * is not READY. The one answer behind /v2/health/ready, ServerReady and /health.
 *
 * Each change of the answer (ready, or not ready for a new reason) is logged once, when a probe
 * first sees it: the probes themselves are not worth a line each (their access lines are at debug).
 */
@Injectable()
export class ServerReadiness {
  private readonly logger = new Logger(ServerReadiness.name);
  private shuttingDown = false;
  /** The answer last logged: null before the first, '' for ready, else the reason. */
  private logged: string | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly registry: ModelCatalog,
  ) {}

  /** From now on the server reports itself not ready; it keeps serving what it is sent. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  notReadyReason(): string | undefined {
    const reason = this.shuttingDown ? 'the server is shutting down' : this.registry.notReadyReason(this.config.STRICT_READINESS);
    this.logChange(reason);
    return reason;
  }

  private logChange(reason: string | undefined): void {
    const answer = reason ?? '';
    if (answer === this.logged) return;
    const wasReady = this.logged === '';
    this.logged = answer;
    if (reason === undefined) this.logger.log('the server is ready');
    // Not ready after being ready is news an operator wants; not ready while starting is expected.
    else if (wasReady && !this.shuttingDown) this.logger.warn(`the server is not ready: ${reason}`);
    else this.logger.log(`the server is not ready: ${reason}`);
  }
}
