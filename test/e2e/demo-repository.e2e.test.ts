import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MULTI_IO_CONFIG, writeDemoRepository } from '../../scripts/build-models.js';
import { parseModelConfig } from '../../src/infra/model-repository/model-config.schema.js';
import { bearer, getJson, postJson, postJsonWith, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

/** The README's ```sh blocks, in order. */
async function readmeShellBlocks(): Promise<string[]> {
  const text = await readFile(README, 'utf8');
  return [...text.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((match) => match[1]!);
}

/** The one README shell block that contains `marker`. */
async function readmeBlockWith(marker: string): Promise<string> {
  const blocks = (await readmeShellBlocks()).filter((block) => block.includes(marker));
  assert.equal(blocks.length, 1, `one README sh block contains ${marker}`);
  return blocks[0]!;
}

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

/** The README's examples that change the repository, each against a demo repository of its own. */
describe('the README examples that change the demo repository', () => {
  const TOKEN = 'readme-examples-admin-token';
  let repository: string;
  let server: TestServer;
  before(async () => {
    repository = await mkdtemp(join(tmpdir(), 'onnx-serving-demo-'));
    await writeDemoRepository(repository);
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN });
  });
  after(() => server.close());

  it('the dynamic-batching config.json: valid, and served after the repository calls the README makes', async () => {
    const block = await readmeBlockWith("cat > models/classifier/config.json <<'JSON'");
    const heredoc = /<<'JSON'\n([\s\S]*?)^JSON$/m.exec(block);
    assert.ok(heredoc, 'the config.json here-document');
    const text = heredoc[1]!;
    parseModelConfig(text); // throws naming the field if the schema refuses it
    const declared = JSON.parse(text);
    await writeFile(join(repository, 'classifier', 'config.json'), text);

    // What the block then does: Triton's repository calls, in its order.
    const calls = [...block.matchAll(/curl -s -X POST localhost:8000(\/v2\/repository\/models\/classifier\/(?:unload|load)) -H "\$A"/g)].map((m) => m[1]!);
    assert.deepEqual(calls, ['/v2/repository/models/classifier/unload', '/v2/repository/models/classifier/load']);
    for (const path of calls) {
      const { status, body } = await requestJson('POST', `${server.url}${path}`, { headers: bearer(TOKEN) });
      assert.equal(status, 200, `${path}: ${JSON.stringify(body)}`);
    }

    const { body: config } = await getJson(`${server.url}/v2/models/classifier/config`);
    assert.equal(config.max_batch_size, declared.max_batch_size);
    const batching = declared.dynamic_batching;
    assert.deepEqual(config.dynamic_batching.preferred_batch_size, batching.preferred_batch_size);
    assert.equal(Number(config.dynamic_batching.max_queue_delay_microseconds), batching.max_queue_delay_microseconds);
    assert.equal(config.dynamic_batching.priority_levels, batching.priority_levels);
    assert.equal(config.dynamic_batching.default_priority_level, batching.default_priority_level);
    assert.equal(config.dynamic_batching.default_queue_policy.max_queue_size, batching.default_queue_policy.max_queue_size);
    assert.equal(Number(config.dynamic_batching.default_queue_policy.default_timeout_microseconds), batching.default_queue_policy.default_timeout_microseconds);

    // The block's request: priority 1 exists only with the new configuration (the demo's has no levels).
    const request = /-H 'x-timeout-ms: (\d+)' -d '(\{[\s\S]*?\})'/.exec(block);
    assert.ok(request, 'the infer request of the block');
    const answer = await postJsonWith(`${server.url}/v2/models/classifier/infer`, JSON.parse(request[2]!), { headers: { 'x-timeout-ms': request[1]! } });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.parameters.batch_size, 1);
  });

  it('the upload sends a file that `npm start` writes, and the server takes it', async () => {
    const block = await readmeBlockWith('/admin/models/classifier/versions/2');
    const file = /--data-binary @(\S+)/.exec(block)?.[1];
    assert.ok(file !== undefined && file.startsWith('models/'), `the upload names a file of ./models: ${file}`);
    const bytes = await readFile(join(repository, file.slice('models/'.length)));
    const response = await fetch(`${server.url}/admin/models/classifier/versions/2`, {
      method: 'PUT',
      headers: { ...bearer(TOKEN), 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(response.status, 201, await response.text());
  });
});
