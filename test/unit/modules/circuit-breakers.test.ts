import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { BreakerState } from '../../../src/domain/inference/circuit-breaker-events.js';
import type { ModelVersion } from '../../../src/domain/registry/model-version.js';
import { DomainError, type DomainErrorCode } from '../../../src/domain/shared/domain-error.js';
import type { AppConfig } from '../../../src/infra/config/app-config.js';
import { InProcessEventBus } from '../../../src/infra/messaging/in-process-event-bus.js';
import { CircuitBreakers } from '../../../src/modules/inference/circuit-breakers.js';
import type { InferenceMetrics } from '../../../src/modules/observability/metrics/inference-metrics.js';
import { assertRejectsWithDomainError } from '../support/domain-error.assertions.js';
import { aModelVersion } from '../support/model-version.mother.js';

const CONFIG = { BREAKER_ERROR_RATE: 0.5, BREAKER_MIN_REQUESTS: 4, BREAKER_WINDOW_MS: 60_000, BREAKER_OPEN_MS: 60_000 } as AppConfig;

/**
 * Which failures open a version's breaker: those the error table says the version is to blame for
 * (src/domain/shared/domain-error.ts), never a client's.
 */
describe('CircuitBreakers', () => {
  const states: BreakerState[] = [];
  const breakers = new CircuitBreakers(CONFIG, new InProcessEventBus(), { breakerState: (_m: string, _v: number, state: BreakerState) => states.push(state) } as unknown as InferenceMetrics);
  after(() => breakers.onApplicationShutdown());

  const fail = (version: ModelVersion, code: DomainErrorCode) => assert.rejects(breakers.run(version, () => Promise.reject(new DomainError(code, code))), { message: code });

  it("never opens on a client's errors, a cancel, a full queue or a reached limit", async () => {
    const version = aModelVersion().of('clients').ready().build();
    for (const code of ['INFERENCE.INVALID_SHAPE', 'INFERENCE.CANCELLED', 'INFERENCE.QUEUE_FULL', 'INFERENCE.CONCURRENCY_LIMITED', 'ADMIN.INVALID_REQUEST'] as const) {
      for (let i = 0; i < 4; i++) await fail(version, code);
    }
    assert.equal(await breakers.run(version, () => Promise.resolve('ran')), 'ran');
    assert.deepEqual(states, ['closed']);
  });

  it('opens on runtime failures and missed deadlines, then refuses without running', async () => {
    const built = aModelVersion().of('faulty').ready().build();
    for (const code of ['INFERENCE.RUNTIME_ERROR', 'INFERENCE.DEADLINE_EXCEEDED', 'INFERENCE.RUNTIME_ERROR', 'INFERENCE.DEADLINE_EXCEEDED'] as const) await fail(built, code);
    let ran = false;
    await assertRejectsWithDomainError(
      breakers.run(built, async () => {
        ran = true;
      }),
      'INFERENCE.CIRCUIT_OPEN',
      "model 'faulty'",
    );
    assert.equal(ran, false);
    assert.ok(states.includes('open'));
  });
});
