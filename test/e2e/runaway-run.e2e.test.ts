// A request whose run does not end (a Loop whose trip count is an input, what a generative
// max_length looks like, sent a huge count), over the real app: the client's answer at
// MAX_REQUEST_TIMEOUT_MS, the instance stopped and replaced, the model serving on, a forced unload
// and an upload whose warm-up never ends both answering.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loopModel } from '../../scripts/build-models.js';
import { childProcessesOf, isRunning } from '../../bench/child-processes.js';
import { schedulerShows } from '../support/engine-state.js';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

const TOKEN = 'runaway-test-token-0123456789';
const admin = { authorization: `Bearer ${TOKEN}` };
const FOREVER = '1000000000000';
const loopRequest = (turns: string, x = 1) => ({
  inputs: [
    { name: 'trip_count', shape: [1], datatype: 'INT64', data: [turns] },
    { name: 'x', shape: [1], datatype: 'FP32', data: [x] },
  ],
});

/** Polls what only the OS can tell (a process has gone); fails after ~10 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (condition()) return;
    await sleep(10);
  }
  throw new Error(`never: ${what}`);
}

async function versionState(url: string, model: string, version: string): Promise<string> {
  const { body } = await requestJson('GET', `${url}/admin/models`, { headers: admin });
  return body.models.find((m: { name: string }) => m.name === model).versions.find((v: { version: string }) => v.version === version).state;
}

describe('a run that does not end', { timeout: 120_000 }, () => {
  let server: TestServer;
  let client: InferenceClient;
  const infer = (body: unknown) => postJson(`${server.url}/v2/models/loop/infer`, body);
  /** The server's session worker processes (it runs in this process: they are its children). */
  const workers = () => childProcessesOf(process.pid);

  before(async () => {
    const repository = await makeRepository([
      {
        name: 'loop',
        onnx: loopModel(),
        config: {
          max_batch_size: 0,
          instance_group: [{ count: 1, kind: 'KIND_CPU' }],
          parameters: { intra_op_thread_count: { string_value: '1' } },
          // Zero turns: quick for a model that loops as its input says; never ending for one that loops on its own.
          model_warmup: [
            {
              name: 'zeros',
              batch_size: 1,
              inputs: { trip_count: { data_type: 'TYPE_INT64', dims: [1], zero_data: true }, x: { data_type: 'TYPE_FP32', dims: [1], zero_data: true } },
            },
          ],
        },
      },
    ]);
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, MAX_REQUEST_TIMEOUT_MS: '1000', MODEL_WARMUP_TIMEOUT_MS: '1000' });
    client = new InferenceClient(server.server.grpcAddress);
  });

  after(async () => {
    client.close();
    await server.close();
  });

  it('HTTP: 504 at MAX_REQUEST_TIMEOUT_MS; its process is killed, a new instance serves the next request', async () => {
    const [worker] = workers();
    assert.ok(worker !== undefined && workers().length === 1, 'one instance, one process');
    const runaway = await infer(loopRequest(FOREVER));
    assert.equal(runaway.status, 504, JSON.stringify(runaway.body));
    assert.match(runaway.body.error, /timeout \(1000 ms\) passed while its batch ran/);
    await until(() => !isRunning(worker), 'the process computing the abandoned run ends');

    const next = await infer(loopRequest('4'));
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.deepEqual(next.body.outputs[0].data, [5]);
    assert.equal(workers().length, 1, 'replaced, not added');
  });

  it('gRPC: DEADLINE_EXCEEDED, and the next call is answered', async () => {
    const request = (turns: string) => ({
      model_name: 'loop',
      inputs: [
        { name: 'trip_count', datatype: 'INT64', shape: [1], contents: { int64_contents: [turns] } },
        { name: 'x', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } },
      ],
    });
    await assert.rejects(client.infer(request(FOREVER)), (error: ServiceError) => error.code === Status.DEADLINE_EXCEEDED);
    const answer = await client.infer(request('2'));
    assert.deepEqual(Array.from(new Float32Array(new Uint8Array(answer.raw_output_contents[0]!).buffer)), [3]);
  });

  it('a forced unload while it runs returns, and the version leaves UNLOADING', async () => {
    const [worker] = workers();
    const runaway = infer(loopRequest(FOREVER));
    await schedulerShows(server.url, 'loop', 0, 1);
    const unload = await requestJson('POST', `${server.url}/admin/models/loop/versions/1/unload`, { headers: admin, body: { force: true } });
    assert.equal(unload.status, 200, JSON.stringify(unload.body));
    assert.equal(await versionState(server.url, 'loop', '1'), 'UNAVAILABLE');
    assert.equal((await runaway).status, 504);
    await until(() => !isRunning(worker!), 'the unloaded instance\'s process ends');
    assert.deepEqual(workers(), [], 'no instance left, none restarted');

    const load = await requestJson('POST', `${server.url}/admin/models/loop/versions/1/load`, { headers: admin });
    assert.equal(load.status, 200, JSON.stringify(load.body));
    assert.equal((await infer(loopRequest('1'))).status, 200);
  });

  it('an upload whose warm-up never ends fails past MODEL_WARMUP_TIMEOUT_MS, leaving no process and no version', async () => {
    const before = workers();
    const upload = await fetch(`${server.url}/admin/models/loop/versions/2`, {
      method: 'PUT',
      headers: { ...admin, 'content-type': 'application/octet-stream' },
      // Even the configured warm-up's zero-filled input loops 10^12 times.
      body: loopModel(1e12),
    });
    const body = (await upload.json()) as { error: string };
    assert.equal(upload.status, 400, JSON.stringify(body));
    assert.match(body.error, /the warm-up did not end within MODEL_WARMUP_TIMEOUT_MS \(1000 ms\): its instance was stopped/);
    await until(() => workers().length === before.length, 'the checking instance\'s process ends');
    const { body: models } = await requestJson('GET', `${server.url}/admin/models`, { headers: admin });
    assert.deepEqual(models.models.find((m: { name: string }) => m.name === 'loop').versions.map((v: { version: string }) => v.version), ['1']);
  });
});
