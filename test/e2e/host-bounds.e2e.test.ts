import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { classifierModel, expandModel } from '../../scripts/build-models.js';
import { identityModelOf } from '../support/identity-models.js';
import { bearer, getJson, makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * What a configuration or a request may ask of the host (issue 15, items 8 and 9): a model's threads
 * bounded by MAX_MODEL_THREADS, its dims by the request and answer limits, through every path that
 * takes a configuration; an answer bounded by MAX_RESPONSE_BYTES before and after its run. Each
 * attack is refused naming the field and the bound, builds nothing (threads, memory), and the
 * server serves on.
 */

const TOKEN = 'host-bounds-test-token-0123456789';
const admin = bearer(TOKEN);
const MAX_MODEL_THREADS = 4;
const MAX_REQUEST_BYTES = 64 * 1024;
const MAX_RESPONSE_BYTES = 1024 * 1024;
const classify = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };
/** 16 instances of 16 intra-op threads (64 × 256 took a host down with 17,547 threads). */
const GREEDY = { instance_group: [{ count: 16, kind: 'KIND_CPU' }], parameters: { intra_op_thread_count: { string_value: '16' } } };

/** The threads of this process (the server runs in it): what a refused configuration must not have started. */
function threads(): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

function rssBytes(): number {
  return process.memoryUsage().rss;
}

const expand = (rows: number, columns: number) => ({
  inputs: [
    { name: 'value', shape: [1], datatype: 'FP32', data: [1] },
    { name: 'shape', shape: [2], datatype: 'INT64', data: [rows, columns] },
  ],
});

describe('host bounds: configurations and answers', () => {
  let server: TestServer;
  before(async () => {
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'greedy', onnx: classifierModel(), config: GREEDY },
      { name: 'wide', onnx: identityModelOf(['FP32']), config: { max_batch_size: 8, input: [{ name: 'in_fp32', data_type: 'TYPE_FP32', dims: [50_000_000] }] } },
      { name: 'identity', onnx: identityModelOf(['BYTES']) },
      { name: 'expand', onnx: expandModel() },
    ]);
    server = await startTestServer(repository, {
      ADMIN_TOKEN: TOKEN,
      MAX_MODEL_THREADS: String(MAX_MODEL_THREADS),
      MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
      MAX_RESPONSE_BYTES: String(MAX_RESPONSE_BYTES),
    });
  });
  after(() => server.close());

  async function stillServing(): Promise<void> {
    assert.equal((await fetch(`${server.url}/v2/health/live`)).status, 200);
    const { status, body } = await postJson(`${server.url}/v2/models/classifier/infer`, classify);
    assert.equal(status, 200, JSON.stringify(body));
  }

  describe('a configuration past the bounds is refused on every path, naming the field and the bound', () => {
    it('config.json in the repository: the model is UNAVAILABLE with the reason, no instance started', async () => {
      const { body } = await getJson(`${server.url}/health`);
      const models = body.details.models.models;
      assert.equal(models.greedy[0].state, 'UNAVAILABLE');
      assert.match(models.greedy[0].reason, /config\.json: instance_group\.count 16 is more than the 4 threads a model may use \(MAX_MODEL_THREADS/);
      assert.equal(models.wide[0].state, 'UNAVAILABLE');
      assert.match(models.wide[0].reason, /input 'in_fp32' dims \[50000000\]: dim 50000000 is more than the 16384 FP32 elements .* MAX_REQUEST_BYTES/);
      assert.equal(body.details.workers.pools.some((pool: { key: string }) => pool.key.startsWith('greedy/') || pool.key.startsWith('wide/')), false);
      await stillServing();
    });

    it("the repository load's override: 400 REGISTRY.INVALID_CONFIG, and no thread started", async () => {
      const before = threads();
      const load = await requestJson('POST', `${server.url}/v2/repository/models/classifier/load`, {
        headers: admin,
        body: { parameters: { config: JSON.stringify(GREEDY) } },
      });
      assert.equal(load.status, 400, JSON.stringify(load.body));
      assert.match(load.body.error, /the configuration override is invalid: instance_group\.count 16 is more than the 4 threads .*MAX_MODEL_THREADS/);
      assert.ok(threads() < before + 8, `the process went from ${before} to ${threads()} threads`);
      await stillServing();
    });

    it("the override's dims: an FP32 [5e7, 4] input and a BYTES [1, 2e8] one are refused, nothing built", async () => {
      const before = rssBytes();
      for (const [datatype, dims, message] of [
        ['TYPE_FP32', [50_000_000, 4], /input 'in_bytes'|input 'in_fp32'/],
        ['TYPE_STRING', [1, 200_000_000], /input 'in_bytes' dims \[1,200000000\]: dim 200000000 is more than the 16384 BYTES elements \(of 4 bytes\) .*MAX_REQUEST_BYTES/],
      ] as const) {
        const config = { max_batch_size: 0, input: [{ name: 'in_bytes', data_type: datatype, dims }] };
        const load = await requestJson('POST', `${server.url}/v2/repository/models/identity/load`, { headers: admin, body: { parameters: { config: JSON.stringify(config) } } });
        assert.equal(load.status, 400, JSON.stringify(load.body));
        assert.match(load.body.error, message);
      }
      assert.ok(rssBytes() < before + 256 * 1024 ** 2, 'a refused configuration allocated its warm-up');
      await stillServing();
    });

    it("an admin upload with the model's configuration past the bounds: 400, the version not added", async () => {
      const upload = await fetch(`${server.url}/admin/models/greedy/versions/2`, {
        method: 'PUT',
        headers: { ...admin, 'content-type': 'application/octet-stream' },
        body: classifierModel(),
      });
      const body = (await upload.json()) as { error: string };
      assert.equal(upload.status, 400, JSON.stringify(body));
      assert.match(body.error, /model 'greedy': config\.json: instance_group\.count 16 .*MAX_MODEL_THREADS/);
      await stillServing();
    });
  });

  describe('an answer past MAX_RESPONSE_BYTES', () => {
    it('is refused after the run when only the run knows its size (400 naming the limit), and its memory is not kept', async () => {
      const before = rssBytes();
      // 4096 × 8192 FP32: a 128 MiB answer from a request of a few bytes.
      const { status, body } = await postJson(`${server.url}/v2/models/expand/infer`, expand(4096, 8192));
      assert.equal(status, 400, JSON.stringify(body).slice(0, 200));
      assert.match(body.error, /the answer is too large: the outputs of its run hold 134217728 bytes, more than the 1048576 bytes an answer may hold \(MAX_RESPONSE_BYTES\)/);
      // With onnxruntime's arena the 128 MiB stayed allocated until unload; now it goes back. (The
      // worker collects its copy just after answering: the small runs give it the turns to do so.)
      let rss = rssBytes();
      for (let attempt = 0; attempt < 20 && rss >= before + 64 * 1024 ** 2; attempt++) {
        assert.equal((await postJson(`${server.url}/v2/models/expand/infer`, expand(64, 64))).status, 200);
        rss = rssBytes();
      }
      assert.ok(rss < before + 64 * 1024 ** 2, `RSS went from ${before >> 20} MiB to ${rss >> 20} MiB and stayed`);
      await stillServing();
    });

    it('an answer within the limit is served', async () => {
      const { status, body } = await postJson(`${server.url}/v2/models/expand/infer`, expand(256, 1024));
      assert.equal(status, 200);
      assert.deepEqual(body.outputs[0].shape, [256, 1024]);
    });

    it('is refused before the run when the fixed dims and the batch size say so', async () => {
      // The classifier's probabilities are [batch, 3] FP32: under 1 MiB for any batch this test can send,
      // so a lower limit shows it: MAX_RESPONSE_BYTES is per server; the domain test covers the arithmetic.
      const rows = Array.from({ length: 8 }, () => [6.7, 3.0, 5.2, 2.3]);
      const { status } = await postJson(`${server.url}/v2/models/classifier/infer`, { inputs: [{ name: 'input', shape: [8, 4], datatype: 'FP32', data: rows }] });
      assert.equal(status, 200);
    });
  });
});
