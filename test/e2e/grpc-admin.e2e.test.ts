import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { startServer } from '../../src/app.js';
import { loadAppConfig } from '../../src/infra/config/app-config.js';
import { freePort } from '../support/free-port.js';
import { InferenceClient, outputOf, Status, type CallOptions, type ModelInferRequest, type ServiceError } from '../support/grpc-client.js';
import { bearer, getJson, makeRepository, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Triton's model-repository extension over gRPC (RepositoryIndex, RepositoryModelLoad,
 * RepositoryModelUnload) behind the admin token in the `authorization` metadata, and the server's
 * readiness over gRPC: while the repository loads, and with a model that failed to load.
 */

const TOKEN = 'grpc-admin-test-token-0123456789';
const ADMIN: CallOptions = { token: TOKEN };
const corrupt = new TextEncoder().encode('this is not an ONNX model');
const SAMPLE = [6.7, 3.0, 5.2, 2.3];
const classify = (model: string, rows = 1): ModelInferRequest => ({
  model_name: model,
  inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 4], contents: { fp32_contents: new Array<number[]>(rows).fill(SAMPLE).flat() } }],
});

function rejectsWith(promise: Promise<unknown>, code: Status, details: RegExp): Promise<void> {
  return assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, code, `expected ${Status[code]}, got ${Status[error.code]}: ${error.details}`);
    assert.match(error.details, details);
    return true;
  });
}

describe("Triton's repository extension over gRPC", () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;
  before(async () => {
    const repository = await makeRepository([
      { name: 'indexed', onnx: classifierModel() },
      { name: 'reloadable', onnx: classifierModel(), config: { max_batch_size: 8 } },
      { name: 'unloadable', onnx: classifierModel() },
      { name: 'guarded', onnx: classifierModel(), config: { max_batch_size: 8 } },
      { name: 'broken', onnx: corrupt },
    ]);
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, STRICT_READINESS: 'false' });
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  const maxBatchSize = async (name: string) => (await client.unary('ModelConfig', { name })).config.max_batch_size;

  describe('the admin token', () => {
    const calls = {
      RepositoryIndex: (options?: CallOptions) => client.unary('RepositoryIndex', {}, options),
      RepositoryModelLoad: (options?: CallOptions) =>
        client.unary('RepositoryModelLoad', { model_name: 'guarded', parameters: { config: { string_param: JSON.stringify({ max_batch_size: 1 }) } } }, options),
      RepositoryModelUnload: (options?: CallOptions) => client.unary('RepositoryModelUnload', { model_name: 'guarded' }, options),
    };

    for (const [method, call] of Object.entries(calls)) {
      it(`${method}: UNAUTHENTICATED without a token, with a wrong one, or with another scheme`, async () => {
        await rejectsWith(call(), Status.UNAUTHENTICATED, /the admin API needs an Authorization: Bearer <token> header \(gRPC: authorization metadata\)/);
        await rejectsWith(call({ token: `${TOKEN}x` }), Status.UNAUTHENTICATED, /^the admin token is not valid$/);
        await rejectsWith(call({ token: '' }), Status.UNAUTHENTICATED, /Bearer <token>/);
        await rejectsWith(call({ metadata: { authorization: `Basic ${TOKEN}` } }), Status.UNAUTHENTICATED, /Bearer <token>/);
        await rejectsWith(call({ metadata: { 'x-authorization': `Bearer ${TOKEN}` } }), Status.UNAUTHENTICATED, /Bearer <token>/);
        // Nothing the refused calls asked for happened.
        assert.deepEqual(await client.unary('ModelReady', { name: 'guarded' }), { ready: true });
        assert.equal(await maxBatchSize('guarded'), 8);
      });
    }

    it('lets RepositoryIndex through with `authorization: Bearer <token>` metadata, the scheme in any case', async () => {
      const index = await client.unary('RepositoryIndex', {}, { metadata: { authorization: `Bearer ${TOKEN}` } });
      assert.ok(index.models.some((m) => m.name === 'indexed'));
      const lower = await client.unary('RepositoryIndex', {}, { metadata: { authorization: `bearer ${TOKEN}` } });
      assert.deepEqual(lower, index);
    });

    it('leaves the other methods open', async () => {
      assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      assert.ok(await client.infer(classify('guarded')));
    });
  });

  describe('RepositoryIndex', () => {
    it('lists every model of the repository with its versions and states, as HTTP does', async () => {
      const { models } = await client.unary('RepositoryIndex', {}, ADMIN);
      assert.deepEqual(models.map((m) => m.name), ['broken', 'guarded', 'indexed', 'reloadable', 'unloadable']);
      assert.deepEqual(
        models.find((m) => m.name === 'indexed'),
        { name: 'indexed', version: '1', state: 'READY', reason: '' },
      );
      const broken = models.find((m) => m.name === 'broken')!;
      assert.equal(broken.state, 'UNAVAILABLE');
      assert.notEqual(broken.reason ?? '', '', 'a failed load says why');

      const http = await requestJson('POST', `${url}/v2/repository/index`, { headers: bearer(TOKEN), body: {} });
      assert.equal(http.status, 200);
      assert.deepEqual(models, http.body);
    });

    it('lists only the versions ready for inference when asked', async () => {
      const { models } = await client.unary('RepositoryIndex', { ready: true, repository_name: 'any name' }, ADMIN);
      assert.deepEqual(models.map((m) => m.name), ['guarded', 'indexed', 'reloadable', 'unloadable']);
      assert.ok(models.every((m) => m.state === 'READY'));
      const http = await requestJson('POST', `${url}/v2/repository/index`, { headers: bearer(TOKEN), body: { ready: true } });
      assert.deepEqual(models, http.body);
    });
  });

  describe('RepositoryModelLoad', () => {
    it('loads a model with a `config` string_param overriding its configuration, which ModelConfig and HTTP then show', async () => {
      assert.equal(await maxBatchSize('reloadable'), 8);
      await client.unary('RepositoryModelLoad', { model_name: 'reloadable', parameters: { config: { string_param: JSON.stringify({ max_batch_size: 2 }) } } }, ADMIN);
      assert.equal(await maxBatchSize('reloadable'), 2);
      assert.equal((await getJson(`${url}/v2/models/reloadable/config`)).body.max_batch_size, 2);
      await rejectsWith(client.infer(classify('reloadable', 3)), Status.INVALID_ARGUMENT, /batch size 3, expected 1 to 2/);
      assert.deepEqual(outputOf(await client.infer(classify('reloadable', 2)), 'label').values, [2n, 2n]);
    });

    it("reloads a model without parameters: the repository's configuration serves again", async () => {
      await client.unary('RepositoryModelLoad', { model_name: 'reloadable' }, ADMIN);
      assert.equal(await maxBatchSize('reloadable'), 8);
      assert.deepEqual(outputOf(await client.infer(classify('reloadable', 3)), 'label').values, [2n, 2n, 2n]);
    });

    it('refuses a config that is not a string_param, an unknown parameter or a parameter without a value with INVALID_ARGUMENT, and changes nothing', async () => {
      const load = (parameters: object) => client.unary('RepositoryModelLoad', { model_name: 'reloadable', parameters: parameters as never }, ADMIN);
      const notAString = /parameters\.config must be a string holding the model configuration in JSON/;
      // (An int64_param config is refused too: see the next test.)
      await rejectsWith(load({ config: { int64_param: 4 } }), Status.INVALID_ARGUMENT, /config/);
      await rejectsWith(load({ config: { bool_param: true } }), Status.INVALID_ARGUMENT, notAString);
      await rejectsWith(load({ config: { bytes_param: Buffer.from('{"max_batch_size":2}') } }), Status.INVALID_ARGUMENT, notAString);
      await rejectsWith(load({ file: { string_param: 'x' } }), Status.INVALID_ARGUMENT, /parameters\.file is not supported \(only "config"/);
      await rejectsWith(load({ config: { string_param: '{}' }, unload_dependents: { bool_param: true } }), Status.INVALID_ARGUMENT, /parameters\.unload_dependents is not supported/);
      await rejectsWith(load({ config: {} }), Status.INVALID_ARGUMENT, /parameters\['config'\] has no value/);
      await rejectsWith(load({ config: { string_param: '{"max_batch_size": ' } }), Status.INVALID_ARGUMENT, /JSON/);
      await rejectsWith(load({ config: { string_param: JSON.stringify({ max_batch_sizes: 4 }) } }), Status.INVALID_ARGUMENT, /max_batch_sizes/);
      assert.equal(await maxBatchSize('reloadable'), 8);
      assert.deepEqual(await client.unary('ModelReady', { name: 'reloadable' }), { ready: true });
    });

    it(
      'refuses an int64_param config as not a string',
      async () => {
        await rejectsWith(
          client.unary('RepositoryModelLoad', { model_name: 'reloadable', parameters: { config: { int64_param: 4 } } }, ADMIN),
          Status.INVALID_ARGUMENT,
          /parameters\.config must be a string holding the model configuration in JSON/,
        );
      },
    );

    it('answers NOT_FOUND for a model the repository does not have, INVALID_ARGUMENT for a name that is not allowed', async () => {
      await rejectsWith(client.unary('RepositoryModelLoad', { model_name: 'nowhere' }, ADMIN), Status.NOT_FOUND, /nowhere/);
      await rejectsWith(client.unary('RepositoryModelUnload', { model_name: 'nowhere' }, ADMIN), Status.NOT_FOUND, /nowhere/);
      await rejectsWith(client.unary('RepositoryModelLoad', { model_name: '..' }, ADMIN), Status.INVALID_ARGUMENT, /model name "\.\." is not allowed/);
      await rejectsWith(client.unary('RepositoryModelUnload', { model_name: '' }, ADMIN), Status.INVALID_ARGUMENT, /model name "" is not allowed/);
    });
  });

  describe('RepositoryModelUnload', () => {
    it('unloads every version: ModelReady answers false, ModelInfer UNAVAILABLE, the index UNAVAILABLE; a load serves it again', async () => {
      await client.unary('RepositoryModelUnload', { model_name: 'unloadable' }, ADMIN);
      assert.deepEqual(await client.unary('ModelReady', { name: 'unloadable' }), { ready: false });
      await rejectsWith(client.infer(classify('unloadable')), Status.UNAVAILABLE, /unloadable/);
      const { models } = await client.unary('RepositoryIndex', {}, ADMIN);
      assert.equal(models.find((m) => m.name === 'unloadable')?.state, 'UNAVAILABLE');
      assert.ok(!(await client.unary('RepositoryIndex', { ready: true }, ADMIN)).models.some((m) => m.name === 'unloadable'));
      assert.equal((await getJson(`${url}/v2/models/unloadable/ready`)).status, 503, 'HTTP agrees');
      // An unload of a model that is not loaded is not an error (Triton).
      await client.unary('RepositoryModelUnload', { model_name: 'unloadable' }, ADMIN);

      await client.unary('RepositoryModelLoad', { model_name: 'unloadable' }, ADMIN);
      assert.deepEqual(await client.unary('ModelReady', { name: 'unloadable' }), { ready: true });
      assert.deepEqual(outputOf(await client.infer(classify('unloadable')), 'label').values, [2n]);
    });
  });

  it('ServerReady answers true with a model that failed to load, under STRICT_READINESS=false', async () => {
    assert.deepEqual(await client.unary('ServerReady', {}), { ready: true });
  });
});

describe('readiness over gRPC', () => {
  it('ServerReady answers false under strict readiness while a model failed to load, as HTTP does; ServerLive true', async () => {
    const server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }, { name: 'broken', onnx: corrupt }]));
    const client = new InferenceClient(server.server.grpcAddress);
    try {
      assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      assert.deepEqual(await client.unary('ServerReady', {}), { ready: false });
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 503);
      assert.deepEqual(await client.unary('ModelReady', { name: 'classifier' }), { ready: true });
      assert.deepEqual(await client.unary('ModelReady', { name: 'broken' }), { ready: false });
    } finally {
      client.close();
      await server.close();
    }
  });

  it('ServerReady answers false while the repository loads, and true once it has', async () => {
    const repository = await makeRepository([{ name: 'slow', onnx: classifierModel() }]);
    // A named pipe as config.json: reading it waits until the test writes, so the load stays in progress.
    const fifo = join(repository, 'slow', 'config.json');
    execFileSync('mkfifo', [fifo]);
    const stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-state-'));
    const server = await startServer(
      loadAppConfig({ MODEL_REPOSITORY: repository, STATE_DIR: stateDir, HOST: '127.0.0.1', HTTP_PORT: '0', GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'silent' }),
    );
    const client = new InferenceClient(server.grpcAddress);
    try {
      assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      assert.deepEqual(await client.unary('ServerReady', {}), { ready: false });
      await writeFile(fifo, JSON.stringify({ max_batch_size: 2 }));
      await server.modelsLoaded;
      assert.deepEqual(await client.unary('ServerReady', {}), { ready: true });
      assert.equal((await client.unary('ModelConfig', { name: 'slow' })).config.max_batch_size, 2);
    } finally {
      client.close();
      await server.app.close();
      await rm(stateDir, { recursive: true, force: true });
      await rm(repository, { recursive: true, force: true });
    }
  });
});
