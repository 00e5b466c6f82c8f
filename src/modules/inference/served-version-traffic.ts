import { Injectable } from '@nestjs/common';
import { VersionTraffic } from '../../domain/registry/version-traffic.port.js';
import type { RuntimeKey } from '../../domain/shared/model-version-id.js';
import { GenerationSchedulers } from './generation-schedulers.js';
import { ModelVersionSchedulers } from './model-version-schedulers.js';

/**
 * The VersionTraffic port over both kinds of scheduler a version may have: a version leaving
 * service finishes its generations (the continuous-batch scheduler) and its requests (the dynamic
 * batcher) before the registry releases its instance.
 */
@Injectable()
export class ServedVersionTraffic extends VersionTraffic {
  constructor(
    private readonly requests: ModelVersionSchedulers,
    private readonly generations: GenerationSchedulers,
  ) {
    super();
  }

  async drain(key: RuntimeKey): Promise<void> {
    const reason = `'${key}' is being unloaded`;
    await this.generations.drain(key.toString(), reason);
    await this.requests.drain(key, reason);
  }
}
