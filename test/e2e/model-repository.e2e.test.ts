import assert from 'node:assert/strict';
import { freePort } from '../support/free-port.js';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer } from '../../src/app.js';
import { loadAppConfig } from '../../src/infra/config/app-config.js';
import { classifierModel, staticShapeModel } from '../../scripts/build-models.js';
import { getJson, makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

const classify = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };

describe('model repository', () => {
  describe('a repository with broken models', () => {
    let server: TestServer;
    before(async () => {
      const repository = await makeRepository([
        { name: 'good', onnx: classifierModel() },
        { name: 'corrupt', onnx: new TextEncoder().encode('this is not an ONNX model') },
        { name: 'typo_config', onnx: classifierModel(), config: { max_batch_size: 4, instance_groups: [{ count: 1 }] } },
        { name: 'contradicting_config', onnx: staticShapeModel(), config: { max_batch_size: 8 } },
        { name: 'unparsable_config', onnx: classifierModel(), config: '{ "max_batch_size": ' },
      ]);
      await mkdir(join(repository, 'no_versions', 'latest'), { recursive: true });
      server = await startTestServer(repository);
    });
    after(() => server.close());

    it('serves the good model', async () => {
      const { status, body } = await postJson(`${server.url}/v2/models/good/infer`, classify);
      assert.equal(status, 200);
      assert.deepEqual(body.outputs[1].data, [2]);
    });

    it('reports each broken model UNAVAILABLE with its reason', async () => {
      const { status, body } = await getJson(`${server.url}/health`);
      assert.equal(status, 503);
      const models = body.details.models.models;
      assert.equal(models.good[0].state, 'READY');
      const reasonOf = (name: string) => {
        assert.equal(models[name][0].state, 'UNAVAILABLE', name);
        return models[name][0].reason as string;
      };
      assert.match(reasonOf('corrupt'), /protobuf parsing failed|Load model/i);
      assert.match(reasonOf('typo_config'), /config\.json: .*instance_groups/);
      assert.match(reasonOf('contradicting_config'), /max_batch_size 8 needs a dynamic first dimension .* 'x' has shape \[2,3\]/);
      assert.match(reasonOf('unparsable_config'), /config\.json is not valid JSON/);
      assert.match(reasonOf('no_versions'), /no version directory/);
    });

    it('answers 503 naming the reason when a broken model is asked to serve', async () => {
      const ready = await getJson(`${server.url}/v2/models/corrupt/ready`);
      assert.equal(ready.status, 503);
      const infer = await postJson(`${server.url}/v2/models/typo_config/infer`, classify);
      assert.equal(infer.status, 503);
      assert.match(infer.body.error, /model 'typo_config' has no READY version: version 1 is UNAVAILABLE \(config\.json/);
    });

    it('is not ready under strict readiness, naming the models that are not', async () => {
      const { status, body } = await getJson(`${server.url}/v2/health/ready`);
      assert.equal(status, 503);
      assert.match(body.error, /not every model is READY: .*'contradicting_config' version 1 is UNAVAILABLE/);
    });

    it('stays live', async () => {
      const response = await fetch(`${server.url}/v2/health/live`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), '');
    });
  });

  it('is ready despite a broken model when STRICT_READINESS=false', async () => {
    const repository = await makeRepository([{ name: 'good', onnx: classifierModel() }, { name: 'corrupt', onnx: new Uint8Array([1, 2, 3]) }]);
    const server = await startTestServer(repository, { STRICT_READINESS: 'false' });
    try {
      assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200);
    } finally {
      await server.close();
    }
  });

  it('serves the highest version by default, and the versions a policy names', async () => {
    const repository = await makeRepository([
      { name: 'latest', version: 1, onnx: staticShapeModel() },
      { name: 'latest', version: 3, onnx: staticShapeModel() },
      { name: 'pinned', version: 1, onnx: staticShapeModel(), config: { version_policy: { specific: { versions: [1, 2] } } } },
      { name: 'pinned', version: 2, onnx: staticShapeModel() },
      { name: 'pinned', version: 3, onnx: staticShapeModel() },
    ]);
    const server = await startTestServer(repository);
    try {
      assert.deepEqual((await getJson(`${server.url}/v2/models/latest`)).body.versions, ['3']);
      assert.equal((await getJson(`${server.url}/v2/models/latest/versions/1`)).status, 404);
      const pinned = await getJson(`${server.url}/v2/models/pinned`);
      assert.deepEqual(pinned.body.versions, ['2', '1']);
      const x = { inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', data: [0, 0, 0, 0, 0, 0] }] };
      assert.equal((await postJson(`${server.url}/v2/models/pinned/infer`, x)).body.model_version, '2');
      assert.equal((await postJson(`${server.url}/v2/models/pinned/versions/1/infer`, x)).body.model_version, '1');
      assert.equal((await postJson(`${server.url}/v2/models/pinned/versions/3/infer`, x)).status, 404);
    } finally {
      await server.close();
    }
  });

  it('falls back to the CPU when a config asks for GPU execution providers this machine lacks', async () => {
    const repository = await makeRepository([
      {
        name: 'gpu',
        onnx: classifierModel(),
        config: { instance_group: [{ count: 1, kind: 'KIND_GPU' }], optimization: { execution_accelerators: { gpu_execution_accelerator: [{ name: 'tensorrt' }] } } },
      },
    ]);
    const server = await startTestServer(repository);
    try {
      assert.equal((await postJson(`${server.url}/v2/models/gpu/infer`, classify)).status, 200);
      const health = await getJson(`${server.url}/health`);
      assert.equal(health.body.details.models.models.gpu[0].executionProvider, 'cpu');
      const config = await getJson(`${server.url}/v2/models/gpu/config`);
      assert.deepEqual(config.body.optimization.execution_accelerators.gpu_execution_accelerator, [{ name: 'tensorrt' }]);
    } finally {
      await server.close();
    }
  });

  it('is live but not ready while the repository loads, and ready once it has', async () => {
    const repository = await makeRepository([{ name: 'slow', onnx: classifierModel() }]);
    // A named pipe as config.json: reading it waits until the test writes, so the load stays in progress.
    const fifo = join(repository, 'slow', 'config.json');
    execFileSync('mkfifo', [fifo]);
    const stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-state-'));
    const server = await startServer(loadAppConfig({ MODEL_REPOSITORY: repository, STATE_DIR: stateDir, HOST: '127.0.0.1', HTTP_PORT: '0', GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'silent' }));
    try {
      assert.equal((await fetch(`${server.httpUrl}/v2/health/live`)).status, 200);
      const ready = await getJson(`${server.httpUrl}/v2/health/ready`);
      assert.equal(ready.status, 503);
      assert.match(ready.body.error, /still loading/);
      await writeFile(fifo, JSON.stringify({ max_batch_size: 2 }));
      await server.modelsLoaded;
      assert.equal((await fetch(`${server.httpUrl}/v2/health/ready`)).status, 200);
      assert.equal((await getJson(`${server.httpUrl}/v2/models/slow/config`)).body.max_batch_size, 2);
    } finally {
      await server.app.close();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
