import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifierModel, heavyModel } from '../../scripts/build-models.js';
import { engineShows, schedulerShows } from '../support/engine-state.js';
import { makeRepository, modelStatistics, postJsonWith, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * The queue policy seen from a client, while a model's only instance is busy. The busy model is
 * heavyModel cut to about 1 s per run here: long enough that a request is still queued when its
 * 100-300 ms timeout passes, short enough for the suite. Every step waits for something the server
 * shows (/health, a response), not for time to pass; the one exception is said where it is.
 */
const BUSY_MODEL = heavyModel(4096, 400);
const ONE_INSTANCE = {
  max_batch_size: 0, // the model's input is [1,256]: no batch dimension
  instance_group: [{ count: 1, kind: 'KIND_CPU' }],
  parameters: { intra_op_thread_count: { string_value: '1' } },
};
const busyModel = (name: string, dynamicBatching?: object) => ({
  name,
  onnx: BUSY_MODEL,
  config: { ...ONE_INSTANCE, ...(dynamicBatching && { dynamic_batching: dynamicBatching }) },
});

/** The request that keeps the instance busy goes to level 1, which has no timeout; the others to level 2. */
const TIMEOUT_AT_LEVEL_2 = (policy: object) => ({ priority_levels: 2, default_priority_level: 2, default_queue_policy: policy, priority_queue_policy: { '1': {} } });
const AT_LEVEL_1: Options = { parameters: { priority: 1 } };

const X = [{ name: 'x', shape: [1, 256], datatype: 'FP32', data: new Array<number>(256).fill(0.5) }];

interface Answer {
  readonly status: number;
  readonly body: any;
  readonly headers: Headers;
}

interface Options {
  readonly parameters?: Record<string, string | number | boolean>;
  readonly headers?: Record<string, string>;
  readonly signal?: AbortSignal;
}

function inferOn(url: string, model: string, { parameters = {}, headers, signal }: Options = {}): Promise<Answer> {
  return postJsonWith(`${url}/v2/models/${model}/infer`, { parameters, inputs: X }, { headers, signal });
}

/**
 * Makes the model's only instance busy, so that the next requests wait in the scheduler's queue
 * (the scheduler hands an instance one run at a time). Returns its answer, to await.
 */
async function occupy(url: string, model: string, options?: Options): Promise<Promise<Answer>[]> {
  const running = inferOn(url, model, options);
  await engineShows(url, model, 1, 0);
  return [running];
}

/** Resolves with the answers in the order they arrive, labelled. */
function inArrivalOrder(labelled: Record<string, Promise<Answer>>): Promise<string[]> {
  const order: string[] = [];
  return Promise.all(Object.entries(labelled).map(([label, answer]) => answer.then(() => order.push(label)))).then(() => order);
}

/**
 * Asserts the answers are all 200, then waits until the engine has no call of the model left:
 * from then on /stats is final, and shows whether a request that was refused was computed anyway.
 */
async function assertServedThenIdle(url: string, model: string, answers: Promise<Answer>[]): Promise<void> {
  for (const answer of await Promise.all(answers)) assert.equal(answer.status, 200, JSON.stringify(answer.body));
  await engineShows(url, model, 0, 0);
}

describe('queue policy with the only instance busy', () => {
  let server: TestServer;
  let url: string;
  const infer = (model: string, options?: Options) => inferOn(url, model, options);
  before(async () => {
    const repository = await makeRepository([
      busyModel('queue_of_1', { default_queue_policy: { max_queue_size: 1 } }),
      busyModel('deadlines'),
      busyModel('cancels', { default_queue_policy: { max_queue_size: 1 } }),
      busyModel('two_levels', { priority_levels: 2, default_priority_level: 2, priority_queue_policy: { '2': { max_queue_size: 1 } } }),
      busyModel('override_allowed', TIMEOUT_AT_LEVEL_2({ default_timeout_microseconds: 300_000, allow_timeout_override: true })),
      busyModel('override_refused', TIMEOUT_AT_LEVEL_2({ default_timeout_microseconds: 300_000, allow_timeout_override: false })),
      busyModel('queue_timeout', { default_queue_policy: { default_timeout_microseconds: 300_000 } }),
      busyModel('one_running'),
      busyModel('delays', { default_queue_policy: { timeout_action: 'DELAY', allow_timeout_override: true } }),
    ]);
    server = await startTestServer(repository);
    url = server.url;
  });
  after(() => server.close());

  it('refuses a request past max_queue_size with 503 and Retry-After, and never computes it', async () => {
    const busy = await occupy(url, 'queue_of_1');
    // Two more arrive: whichever comes first takes the only place in the queue.
    const answers = await Promise.all([infer('queue_of_1'), infer('queue_of_1')]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 503]);
    const refused = answers.find((a) => a.status === 503)!;
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(refused.body.error, /the queue of this model is full \(max_queue_size 1\)/);
    await assertServedThenIdle(url, 'queue_of_1', busy);

    const stats = await modelStatistics(url, 'queue_of_1');
    assert.equal(stats.execution_count, 2);
    assert.equal(stats.inference_count, 2);
  });

  it('refuses a request to a full queue before reading its body', async () => {
    const busy = await occupy(url, 'queue_of_1');
    const queued = infer('queue_of_1');
    await schedulerShows(url, 'queue_of_1', 1);
    // A body that is not JSON: a 400 would show it had been read.
    const response = await fetch(`${url}/v2/models/queue_of_1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get('retry-after'), '1');
    assert.deepEqual(await response.json(), { error: 'the queue of this model is full (max_queue_size 1); retry later' });
    await assertServedThenIdle(url, 'queue_of_1', [...busy, queued]);
  });

  it("answers 504 once a request's timeout passes in the queue, while the run ahead goes on, and never computes it", async () => {
    const [running] = await occupy(url, 'deadlines');
    let runningAnswered = false;
    void running.then(
      () => (runningAnswered = true),
      () => undefined, // a failure is reported where it is awaited below
    );
    const expired = await Promise.all([
      infer('deadlines', { headers: { 'x-timeout-ms': '200' } }),
      infer('deadlines', { parameters: { timeout: 200_000 } }),
      infer('deadlines', { parameters: { timeout: 250_000 }, headers: { 'x-timeout-ms': '60000' } }),
    ]);
    assert.equal(runningAnswered, false, 'the run ahead was still going');
    assert.deepEqual(expired.map((a) => a.status), [504, 504, 504]);
    assert.deepEqual(
      expired.map((a) => a.body.error),
      ['200', '200', '250'].map((ms) => `the request's timeout (${ms} ms) passed in the queue`),
    );
    await assertServedThenIdle(url, 'deadlines', [running]);

    const stats = await modelStatistics(url, 'deadlines');
    assert.equal(stats.execution_count, 1);
    assert.equal(stats.inference_count, 1);
    assert.equal(stats.inference_stats.fail.count, 3);
  });

  it('drops a queued request whose client went away, and queues the next one in its place', async () => {
    const busy = await occupy(url, 'cancels');
    // Two requests with a queue of 1: the one refused tells that the other one is queued.
    const clients = [new AbortController(), new AbortController()];
    const sent = clients.map((client, i) => infer('cancels', { signal: client.signal }).then((answer) => ({ i, answer })));
    const refused = await Promise.race(sent);
    assert.equal(refused.answer.status, 503);
    const queued = 1 - refused.i;
    clients[queued].abort();
    await assert.rejects(sent[queued], { name: 'AbortError' });

    // The queue has room again once the server has seen the client go.
    let replacement = await infer('cancels');
    for (let attempt = 0; replacement.status === 503 && attempt < 200; attempt++) {
      await sleep(5);
      replacement = await infer('cancels');
    }
    assert.equal(replacement.status, 200, JSON.stringify(replacement.body));
    await assertServedThenIdle(url, 'cancels', busy);

    const stats = await modelStatistics(url, 'cancels');
    assert.equal(stats.execution_count, 2, 'the run ahead and the replacement, not the cancelled one');
    assert.equal(stats.inference_count, 2);
  });

  it('serves priority level 1 before level 2, although level 2 came first', async () => {
    const busy = await occupy(url, 'two_levels');
    // Level 2 (the default) holds one request: the one of two that is not refused is queued.
    const low = [infer('two_levels'), infer('two_levels')];
    const refused = await Promise.race(low);
    assert.equal(refused.status, 503);
    const high = infer('two_levels', { parameters: { priority: 1 } });
    const queuedLow = Promise.all(low).then((answers) => answers.find((a) => a !== refused)!);
    await schedulerShows(url, 'two_levels', 2);

    assert.deepEqual(await inArrivalOrder({ high, low: queuedLow }), ['high', 'low']);
    const [highAnswer, lowAnswer] = await Promise.all([high, queuedLow]);
    assert.deepEqual([highAnswer.status, lowAnswer.status], [200, 200]);
    assert.ok(highAnswer.body.parameters.queue_time_us < lowAnswer.body.parameters.queue_time_us, 'the later, higher one waited less');
    await assertServedThenIdle(url, 'two_levels', busy);
  });

  it("lets a client's timeout lower the queue policy's default, never raise it", async () => {
    const busy = await occupy(url, 'override_allowed', AT_LEVEL_1);
    const expired = await Promise.all([
      infer('override_allowed', { headers: { 'x-timeout-ms': '60000' } }),
      infer('override_allowed', { headers: { 'x-timeout-ms': '100' } }),
      infer('override_allowed', { parameters: { timeout: 150_000 } }),
      infer('override_allowed'),
    ]);
    assert.deepEqual(expired.map((a) => a.status), [504, 504, 504, 504]);
    assert.deepEqual(
      expired.map((a) => a.body.error),
      ['300', '100', '150', '300'].map((ms) => `the request's timeout (${ms} ms) passed in the queue`),
    );
    await assertServedThenIdle(url, 'override_allowed', busy);
    assert.equal((await modelStatistics(url, 'override_allowed')).execution_count, 1);
  });

  it("ignores a client's timeout when the queue policy does not allow overriding it", async () => {
    const busy = await occupy(url, 'override_refused', AT_LEVEL_1);
    const expired = await Promise.all([
      infer('override_refused', { headers: { 'x-timeout-ms': '100' } }),
      infer('override_refused', { parameters: { timeout: 100_000 } }),
    ]);
    assert.deepEqual(expired.map((a) => [a.status, a.body.error]), [
      [504, "the request's timeout (300 ms) passed in the queue"],
      [504, "the request's timeout (300 ms) passed in the queue"],
    ]);
    await assertServedThenIdle(url, 'override_refused', busy);
    assert.equal((await modelStatistics(url, 'override_refused')).execution_count, 1);
  });

  it('with timeout_action DELAY, still answers a request whose queue timeout passed, after the on-time ones', async () => {
    const busy = await occupy(url, 'delays');
    const late = infer('delays', { headers: { 'x-timeout-ms': '100' } });
    // The one pause: it lets the late request reach the queue before the on-time one is sent.
    await sleep(150);
    const onTime = infer('delays');

    assert.deepEqual(await inArrivalOrder({ late, onTime }), ['onTime', 'late']);
    const [lateAnswer, onTimeAnswer] = await Promise.all([late, onTime]);
    assert.equal(lateAnswer.status, 200, JSON.stringify(lateAnswer.body));
    assert.equal(onTimeAnswer.status, 200, JSON.stringify(onTimeAnswer.body));
    assert.ok(lateAnswer.body.parameters.queue_time_us > 100_000, `queued ${lateAnswer.body.parameters.queue_time_us} µs, past its 100 ms`);
    await assertServedThenIdle(url, 'delays', busy);
    const stats = await modelStatistics(url, 'delays');
    assert.equal(stats.inference_count, 3);
    assert.equal(stats.inference_stats.fail.count, 0);
  });

  it(
    "answers a request scheduled within the queue policy's timeout, however long its run (Triton: time in the queue)",
    async () => {
      const answer = await infer('queue_timeout');
      await engineShows(url, 'queue_timeout', 0, 0);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    },
  );

  it(
    'keeps a request that arrives while the only instance runs a batch in the queue: its timeout passes there and it is never computed',
    async () => {
      const running = infer('one_running');
      await engineShows(url, 'one_running', 1, 0);
      const expired = await infer('one_running', { headers: { 'x-timeout-ms': '200' } });
      assert.equal(expired.status, 504);
      await assertServedThenIdle(url, 'one_running', [running]);
      assert.equal(expired.body.error, "the request's timeout (200 ms) passed in the queue");
      assert.equal((await modelStatistics(url, 'one_running')).execution_count, 1);
    },
  );
});

describe('MAX_REQUEST_TIMEOUT_MS', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(await makeRepository([busyModel('capped')]), { MAX_REQUEST_TIMEOUT_MS: '250' });
  });
  after(() => server.close());

  it("caps a client's longer timeout: the request is answered 504 at the cap, and its run is stopped", async () => {
    const answer = await inferOn(server.url, 'capped', { headers: { 'x-timeout-ms': '60000' } });
    assert.equal(answer.status, 504);
    assert.equal(answer.body.error, "the request's timeout (250 ms) passed while its batch ran");

    // Nobody waits for the run any more: its instance is stopped and replaced (a run past
    // MAX_REQUEST_TIMEOUT_MS computes for nobody), so it never completes as an execution.
    await engineShows(server.url, 'capped', 0, 0);
    const stats = await modelStatistics(server.url, 'capped');
    assert.equal(stats.execution_count, 0);
    assert.equal(stats.inference_count, 0);
    assert.equal(stats.inference_stats.fail.count, 1);
  });
});

describe('one queue per model', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(await makeRepository([busyModel('slow'), { name: 'fast', onnx: classifierModel() }]));
  });
  after(() => server.close());

  it("answers another model's requests while a slow model's only instance runs and more wait in its queue", async () => {
    const slow = [inferOn(server.url, 'slow'), inferOn(server.url, 'slow'), inferOn(server.url, 'slow')];
    await engineShows(server.url, 'slow', 1, 0);
    let slowDone = false;
    void Promise.all(slow).then(() => (slowDone = true));

    const fast = await Promise.all(
      [1, 2, 3].map(() =>
        postJsonWith(`${server.url}/v2/models/fast/infer`, { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] }, {}),
      ),
    );
    assert.deepEqual(fast.map((a) => a.status), [200, 200, 200]);
    assert.equal(slowDone, false, 'the slow model was still busy when the fast one answered');
    for (const answer of await Promise.all(slow)) assert.equal(answer.status, 200);
  });
});
