import { Injectable } from '@nestjs/common';
import { AppConfig } from '../../infra/config/app-config.js';
import { ModelRegistry } from '../registry/model-registry.js';

/**
 * Whether the server should receive traffic: not once it is shutting down (so that load balancers
 * stop sending while it drains), nor while the repository loads or (with STRICT_READINESS) a model
 * is not READY. The one answer behind /v2/health/ready, ServerReady and /health.
 */
@Injectable()
export class ServerReadiness {
  private shuttingDown = false;

  constructor(
    private readonly config: AppConfig,
    private readonly registry: ModelRegistry,
  ) {}

  /** From now on the server reports itself not ready; it keeps serving what it is sent. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  notReadyReason(): string | undefined {
    if (this.shuttingDown) return 'the server is shutting down';
    return this.registry.notReadyReason(this.config.STRICT_READINESS);
  }
}
