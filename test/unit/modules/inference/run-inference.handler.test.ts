// RunInferenceHandler against in-memory ports: which version answers, what it answers, and what is refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InferenceRequest } from '../../../../src/domain/inference/inference-request.js';
import type { RunInferenceCommand } from '../../../../src/domain/inference/inference-use-case.port.js';
import { FakeCancellationSignal } from '../../support/fake-batch-runner.js';
import { DomainError } from '../../../../src/domain/shared/domain-error.js';
import { aConfig, inferenceServices } from '../../support/application.js';
import { FakeInferenceEngine } from '../../support/fake-inference-engine.js';
import { InMemoryModelRepository } from '../../support/in-memory-model-repository.js';

const path = InMemoryModelRepository.modelPath;

function request(values: number[], overrides: Partial<InferenceRequest> = {}): InferenceRequest {
  return { parameters: {}, inputs: [{ name: 'x', datatype: 'FP32', shape: [values.length / 2, 2], data: Float32Array.from(values) }], requestedOutputs: [], ...overrides };
}

async function refusal(promise: Promise<unknown>): Promise<DomainError> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof DomainError, String(error));
  return error;
}

/** `echo` versions 1 and 2 served (version 2 answers twice the input), `down` with its only version failed. */
async function served() {
  const repository = new InMemoryModelRepository().withModel('echo', [1, 2], { versionPolicy: { kind: 'all' } }).withModel('down', [1]);
  const engine = new FakeInferenceEngine().multiplying(path('echo', 2), 2).failingLoad(path('down', 1), 'corrupt');
  return inferenceServices(repository, engine);
}

describe('RunInferenceHandler', () => {
  it("answers with the default version's outputs (the highest READY), its number, and the run's figures", async () => {
    const services = await served();
    try {
      const response = await services.handler.execute({ modelName: 'echo', request: request([1, 2, 3, 4], { id: 'r1' }) });
      assert.equal(response.modelVersion, '2');
      assert.equal(response.id, 'r1');
      assert.deepEqual(response.outputs.map((output) => [output.name, output.shape, [...(output.data as Float32Array)]]), [['y', [2, 2], [2, 4, 6, 8]]]);
      assert.equal(response.parameters.batch_size, 2);
      assert.equal(services.metrics.succeeded.get('echo/2'), 1);
    } finally {
      services.stop();
    }
  });

  it('a version named is the one that answers', async () => {
    const services = await served();
    try {
      const response = await services.handler.execute({ modelName: 'echo', version: 1, request: request([1, 2]) });
      assert.equal(response.modelVersion, '1');
      assert.deepEqual([...(response.outputs[0]!.data as Float32Array)], [1, 2]);
    } finally {
      services.stop();
    }
  });

  it('refuses, naming why: an unknown model, a version not served, an input of the wrong shape; each counted as failed', async () => {
    const services = await served();
    try {
      assert.equal((await refusal(services.handler.execute({ modelName: 'nope', request: request([1, 2]) }))).code, 'REGISTRY.MODEL_NOT_FOUND');
      assert.equal((await refusal(services.handler.execute({ modelName: 'down', request: request([1, 2]) }))).code, 'REGISTRY.VERSION_NOT_READY');
      assert.equal((await refusal(services.handler.execute({ modelName: 'echo', version: 7, request: request([1, 2]) }))).code, 'REGISTRY.VERSION_NOT_FOUND');
      const wrongShape = await refusal(services.handler.execute({ modelName: 'echo', request: { ...request([1, 2, 3]), inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], data: Float32Array.of(1, 2, 3) }] } }));
      assert.equal(wrongShape.code, 'INFERENCE.INVALID_SHAPE');
      assert.match(wrongShape.message, /'x'/);
      assert.equal(services.metrics.failed.get('echo/2 INFERENCE.INVALID_SHAPE'), 1);
      assert.equal(services.metrics.succeeded.size, 0);
    } finally {
      services.stop();
    }
  });

  it("judges a request's headers before its elements are decoded, against every version that may serve it", async () => {
    const services = await served();
    try {
      assert.doesNotThrow(() => services.handler.judge('echo', undefined, [{ name: 'x', datatype: 'FP32', shape: [1, 2] }], []));
      assert.throws(
        () => services.handler.judge('echo', undefined, [{ name: 'image', datatype: 'FP32', shape: [1, 2] }], []),
        (error: DomainError) => error.code === 'INFERENCE.INVALID_INPUT' && error.message === "unknown input 'image': the model's inputs are 'x'",
      );
      assert.equal(services.metrics.failed.get('echo/2 INFERENCE.INVALID_INPUT'), 1, 'counted against the version it was judged for');
    } finally {
      services.stop();
    }
  });

  it("a rollout's route picks the version of a request naming none, and the outcome is counted for the rollout", async () => {
    const services = await served();
    try {
      services.router.routes.set('echo', { version: 1 });
      const response = await services.handler.execute({ modelName: 'echo', request: request([5, 6]) });
      assert.equal(response.modelVersion, '1');
      assert.deepEqual(services.router.outcomes.map(({ modelName, version, outcome }) => [modelName, version, outcome.ok]), [['echo', 1, true]]);
    } finally {
      services.stop();
    }
  });

  it('a shadow version gets a copy of the request; its divergence from the answer is counted, the client sees only the answer', async () => {
    const services = await served();
    try {
      services.router.routes.set('echo', { version: 1, shadow: 2 });
      const response = await services.handler.execute({ modelName: 'echo', request: request([1, 1]) });
      assert.deepEqual([...(response.outputs[0]!.data as Float32Array)], [1, 1]);
      const shadow = await services.router.outcomeOf(2);
      assert.equal(shadow.ok, true);
      assert.ok((shadow.divergence ?? 0) > 0, 'version 2 answers differently');
    } finally {
      services.stop();
    }
  });

  it("a version whose runs fail: RUNTIME_ERROR, until its circuit breaker opens and requests are refused without running", async () => {
    const repository = new InMemoryModelRepository().withModel('flaky', [1]);
    const engine = new FakeInferenceEngine().failingRuns(path('flaky', 1), () => new DomainError('INFERENCE.RUNTIME_ERROR', 'model failed to run'));
    const services = await inferenceServices(repository, engine, aConfig({ BREAKER_MIN_REQUESTS: '2', BREAKER_OPEN_MS: '600000' }));
    try {
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await refusal(services.handler.execute({ modelName: 'flaky', request: request([1, 2]) }))).code);
      assert.deepEqual(codes, ['INFERENCE.RUNTIME_ERROR', 'INFERENCE.RUNTIME_ERROR', 'INFERENCE.CIRCUIT_OPEN']);
      assert.equal(services.metrics.breakers.get('flaky/1'), 'open');
    } finally {
      services.stop();
    }
  });

  describe('the command is plain data', () => {
    /** Region 'out' of 8 bytes, one FP32 [1, 2] answer's worth. */
    function withRegion(services: Awaited<ReturnType<typeof served>>, byteSize = 8) {
      services.sharedMemory.register('out', '/out', 0, byteSize);
      return new Map([['y', { region: 'out', offset: 0, byteSize }]]);
    }

    it('survives structuredClone (no function, no class instance), and the clone runs: headers routed, outputs written to shared memory', async () => {
      const services = await served();
      try {
        const command: RunInferenceCommand = {
          modelName: 'echo',
          request: request([3, 4], { id: 'cloned' }),
          timeoutMicros: 5_000_000,
          cancellation: services.cancellations.register(new FakeCancellationSignal()),
          headers: { 'x-env': 'staging' },
          sharedMemoryOutputs: withRegion(services),
          background: false,
        };
        const clone = structuredClone(command);
        assert.deepStrictEqual(clone, command);

        const response = await services.handler.execute(clone);
        assert.equal(response.id, 'cloned');
        assert.equal(services.router.lastHeader!('x-env'), 'staging');
        assert.equal(services.router.lastHeader!('constructor'), undefined, 'only the headers themselves');
        assert.deepEqual([...new Float32Array(services.sharedMemory.regions.get('out')!.buffer)], [6, 8]);
        assert.equal(services.sharedMemory.held, 0, 'the slices are released once answered');
      } finally {
        services.stop();
      }
    });

    it('honours a cancellation registered by id: a client gone is refused as CANCELLED and counted; one still there is answered, its listener let go', async () => {
      const services = await served();
      try {
        const gone = services.cancellations.register(FakeCancellationSignal.alreadyAborted());
        assert.equal((await refusal(services.handler.execute({ modelName: 'echo', request: request([1, 2]), cancellation: gone }))).code, 'INFERENCE.CANCELLED');
        assert.equal(services.metrics.failed.get('echo/2 INFERENCE.CANCELLED'), 1);

        const signal = new FakeCancellationSignal();
        const waiting = services.cancellations.register(signal);
        const answered = await services.handler.execute({ modelName: 'echo', request: request([1, 2]), cancellation: waiting });
        assert.equal(answered.modelVersion, '2');
        assert.equal(signal.listenerCount, 0);
      } finally {
        services.stop();
      }
    });

    it('refuses a bad shared memory region before anything runs, and fails (counted) a request whose output does not fit its slice', async () => {
      const services = await served();
      try {
        const missing = new Map([['y', { region: 'nowhere', offset: 0, byteSize: 8 }]]);
        services.engine.failingRuns(path('echo', 2), () => new DomainError('INFERENCE.RUNTIME_ERROR', 'ran'));
        const refused = await refusal(services.handler.execute({ modelName: 'echo', request: request([1, 2]), sharedMemoryOutputs: missing }));
        assert.equal(refused.code, 'SHARED_MEMORY.REGION_NOT_FOUND');
        services.engine.failingRuns(path('echo', 2), undefined);

        const tooSmall = withRegion(services, 4);
        const failed = await refusal(services.handler.execute({ modelName: 'echo', request: request([1, 2]), sharedMemoryOutputs: tooSmall }));
        assert.equal(failed.code, 'SHARED_MEMORY.INVALID_REGION');
        assert.equal(services.metrics.failed.get('echo/2 SHARED_MEMORY.INVALID_REGION'), 1);
        assert.equal(services.metrics.succeeded.size, 0);
        assert.equal(services.sharedMemory.held, 0, 'released, failed or not');
      } finally {
        services.stop();
      }
    });
  });
});
