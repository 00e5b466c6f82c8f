import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MULTI_IO_CONFIG, writeDemoRepository } from '../../scripts/build-models.js';
import { getJson, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/** The repository `npm start` serves, and the README's examples against it. */
describe('the demo repository', () => {
  let server: TestServer;
  before(async () => {
    const repository = await mkdtemp(join(tmpdir(), 'onnx-serving-demo-'));
    await writeDemoRepository(repository);
    server = await startTestServer(repository);
  });
  after(() => server.close());

  it('is ready with both models', async () => {
    assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200);
    const health = await getJson(`${server.url}/health`);
    assert.deepEqual(Object.keys(health.body.details.models.models), ['classifier', 'multi_io']);
  });

  it('answers the README curl example', async () => {
    const { status, body } = await postJson(`${server.url}/v2/models/classifier/infer`, {
      inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] }],
    });
    assert.equal(status, 200);
    const [probabilities, label] = body.outputs;
    const rounded = probabilities.data.map((p: number) => Number(p.toFixed(4)));
    assert.deepEqual(rounded, [0.9232, 0.0763, 0.0004, 0.0007, 0.0921, 0.9071]);
    assert.deepEqual(label.data, [0, 2]);
  });

  it('serves multi_io with its config.json', async () => {
    const { body } = await getJson(`${server.url}/v2/models/multi_io/config`);
    assert.equal(body.max_batch_size, MULTI_IO_CONFIG.max_batch_size);
    assert.deepEqual(body.instance_group, MULTI_IO_CONFIG.instance_group);
    const health = await getJson(`${server.url}/health`);
    const pool = health.body.details.workers.pools.find((p: { key: string }) => p.key === 'multi_io/1');
    assert.equal(pool.instances, 2);
  });
});
