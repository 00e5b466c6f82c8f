// CircuitBreakers and ConcurrencyLimits against in-memory ports: what a request meets, and the states they report.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ModelVersionUnloaded } from '../../../../src/domain/registry/model-events.js';
import { DomainError } from '../../../../src/domain/shared/domain-error.js';
import { CircuitBreakers } from '../../../../src/modules/inference/circuit-breakers.js';
import { ConcurrencyLimits } from '../../../../src/modules/inference/concurrency-limits.js';
import { aConfig } from '../../support/application.js';
import { aModelConfig, aModelVersion } from '../../support/model-version.mother.js';
import { RecordedMetrics, RecordingEventBus } from '../../support/in-memory-ports.js';

const runtimeError = () => new DomainError('INFERENCE.RUNTIME_ERROR', 'model failed to run');
const unloaded = (modelName: string, version: number): ModelVersionUnloaded => ({ type: 'ModelVersionUnloaded', occurredAt: new Date(0), modelName, version });

async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    (value) => `ok ${String(value)}`,
    (error: unknown) => (error instanceof DomainError ? error.code : `error ${(error as Error).message}`),
  );
}

describe('CircuitBreakers', () => {
  function someBreakers() {
    const events = new RecordingEventBus();
    const metrics = new RecordedMetrics();
    const config = aConfig({ BREAKER_MIN_REQUESTS: '4', BREAKER_ERROR_RATE: '0.5', BREAKER_OPEN_MS: '600000', BREAKER_WINDOW_MS: '600000' });
    const breakers = new CircuitBreakers(config, events, metrics.asInferenceMetrics());
    breakers.onModuleInit();
    return { breakers, events, metrics };
  }

  it('opens once more than BREAKER_ERROR_RATE of the requests in the window failed on the server side: then refuses at once with CIRCUIT_OPEN, computing nothing', async () => {
    const { breakers, events, metrics } = someBreakers();
    const version = aModelVersion().ready().build();
    try {
      const results = [];
      for (const ok of [true, false, true, false, false]) results.push(await outcome(breakers.run(version, async () => (ok ? 'answer' : Promise.reject(runtimeError())))));
      assert.deepEqual(results, ['ok answer', 'INFERENCE.RUNTIME_ERROR', 'ok answer', 'INFERENCE.RUNTIME_ERROR', 'INFERENCE.RUNTIME_ERROR']);
      let computed = false;
      const refused = await breakers.run(version, async () => (computed = true)).then(
        () => assert.fail('expected CIRCUIT_OPEN'),
        (error: DomainError) => error,
      );
      assert.equal(refused.code, 'INFERENCE.CIRCUIT_OPEN');
      assert.equal(refused.details?.retryAfterSeconds, 600);
      assert.equal(computed, false);
      assert.equal(metrics.breakers.get('resnet/1'), 'open');
      assert.deepEqual(events.published.map((event) => [event.type, (event as { state?: string }).state]), [['CircuitBreakerStateChanged', 'open']]);
    } finally {
      breakers.onApplicationShutdown();
    }
  });

  it("a client's errors (bad input, a full queue, a cancel) never open it", async () => {
    const { breakers, metrics } = someBreakers();
    const version = aModelVersion().ready().build();
    try {
      for (const code of ['INFERENCE.INVALID_SHAPE', 'INFERENCE.QUEUE_FULL', 'INFERENCE.CANCELLED', 'INFERENCE.INVALID_DATA', 'INFERENCE.QUEUE_FULL'] as const) {
        await outcome(breakers.run(version, () => Promise.reject(new DomainError(code, 'the client'))));
      }
      assert.equal(await outcome(breakers.run(version, async () => 'answer')), 'ok answer');
      assert.equal(metrics.breakers.get('resnet/1'), 'closed');
    } finally {
      breakers.onApplicationShutdown();
    }
  });

  it("goes with its version: once it is unloaded, a version loaded again starts with a closed breaker", async () => {
    const { breakers, events } = someBreakers();
    const version = aModelVersion().ready().build();
    try {
      for (let i = 0; i < 4; i++) await outcome(breakers.run(version, () => Promise.reject(runtimeError())));
      assert.equal(await outcome(breakers.run(version, async () => 'answer')), 'INFERENCE.CIRCUIT_OPEN');
      events.publish([unloaded('resnet', 1)]);
      assert.equal(await outcome(breakers.run(version, async () => 'answer')), 'ok answer');
    } finally {
      breakers.onApplicationShutdown();
    }
  });
});

describe('ConcurrencyLimits', () => {
  function someLimits(env: Record<string, string> = {}) {
    const events = new RecordingEventBus();
    const metrics = new RecordedMetrics();
    const limits = new ConcurrencyLimits(aConfig(env), events, metrics.asInferenceMetrics());
    limits.onModuleInit();
    return { limits, events, metrics };
  }

  it('MAX_INFLIGHT_REQUESTS: past it a request is refused at once with CONCURRENCY_LIMITED; a permit that ends makes room', () => {
    const { limits, metrics } = someLimits({ MAX_INFLIGHT_REQUESTS: '2' });
    const version = aModelVersion().ready().build();
    const first = limits.acquire(version);
    limits.acquire(version);
    const refusal = (() => {
      try {
        limits.acquire(version);
      } catch (error) {
        return error as DomainError;
      }
      return assert.fail('expected CONCURRENCY_LIMITED');
    })();
    assert.equal(refusal.code, 'INFERENCE.CONCURRENCY_LIMITED');
    assert.match(refusal.message, /already holds its limit of 2 requests in flight \(max_inflight_requests\)/);
    assert.equal(metrics.limits.get('resnet/1'), 2);
    first.succeeded(5);
    assert.doesNotThrow(() => limits.acquire(version));
  });

  it("the model's max_inflight_requests wins over the server's; none at all: no limit", () => {
    const { limits } = someLimits({ MAX_INFLIGHT_REQUESTS: '100' });
    const capped = aModelVersion().ready(aModelConfig({ concurrency: { maxInFlight: 1 } })).build();
    limits.acquire(capped);
    assert.throws(() => limits.acquire(capped), (error: DomainError) => error.code === 'INFERENCE.CONCURRENCY_LIMITED');
    const { limits: unlimited } = someLimits();
    const version = aModelVersion().ready().build();
    for (let i = 0; i < 1000; i++) unlimited.acquire(version);
  });

  it('adaptive: starts between a batch per instance and the ceiling, and reports its limit', () => {
    const { limits, metrics } = someLimits({ ADAPTIVE_CONCURRENCY: 'true', MAX_INFLIGHT_REQUESTS: '64' });
    limits.acquire(aModelVersion().ready().build());
    assert.equal(metrics.limits.get('resnet/1'), 16);
  });

  it('goes with its version: unloaded, a version loaded again starts with a fresh limit', () => {
    const { limits, events } = someLimits({ MAX_INFLIGHT_REQUESTS: '1' });
    const version = aModelVersion().ready().build();
    limits.acquire(version);
    assert.throws(() => limits.acquire(version));
    events.publish([unloaded('resnet', 1)]);
    assert.doesNotThrow(() => limits.acquire(version));
  });
});
