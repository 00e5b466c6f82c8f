import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { classifierModel, heavyModel } from '../../scripts/build-models.js';
import { engineShows, schedulerShows } from '../support/engine-state.js';
import { InferenceClient, outputOf, rawOf, Status, type ModelInferRequest, type ModelInferResponse, type ServiceError } from '../support/grpc-client.js';
import { makeRepository, modelStatistics, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * The queue seen from a gRPC client while a model's only instance is busy: a full queue, deadlines,
 * cancelled calls and streams, and the completion order of a stream. The busy model is heavyModel
 * cut to about 0.9 s per run (a little less than in dynamic-batching-queue.e2e.test.ts; still several
 * times the 200 ms deadlines). Every step waits for what the server shows (GET /health, an answer),
 * and whether a refused request was computed is read in the statistics once the model is idle.
 */
const BUSY_MODEL = heavyModel(4096, 300);
const busyModel = (name: string, dynamicBatching?: object) => ({
  name,
  onnx: BUSY_MODEL,
  config: {
    max_batch_size: 0, // the model's input is [1,256]: no batch dimension
    instance_group: [{ count: 1, kind: 'KIND_CPU' }],
    parameters: { intra_op_thread_count: { string_value: '1' } },
    ...(dynamicBatching && { dynamic_batching: dynamicBatching }),
  },
});

const x = (model: string, id?: string): ModelInferRequest => ({
  id,
  model_name: model,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 256] }],
  raw_input_contents: [rawOf(new Float32Array(256).fill(0.5))],
});

const SAMPLE = [6.7, 3.0, 5.2, 2.3];
const classify = (id?: string): ModelInferRequest => ({ id, model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: SAMPLE } }] });

/** Settles with the answer or the error, never rejects: for answers that are awaited later. */
function settled(answer: Promise<ModelInferResponse>): Promise<ModelInferResponse | ServiceError> {
  return answer.then(
    (response) => response,
    (error: ServiceError) => error,
  );
}

const isError = (outcome: ModelInferResponse | ServiceError): outcome is ServiceError => outcome instanceof Error;

describe('the queue, over gRPC', () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;
  before(async () => {
    const repository = await makeRepository([
      busyModel('queue_of_1', { default_queue_policy: { max_queue_size: 1 } }),
      busyModel('deadlines'),
      busyModel('short_run'),
      busyModel('cancels'),
      busyModel('stream_cancels'),
      busyModel('slow'),
      { name: 'classifier', onnx: classifierModel() },
    ]);
    server = await startTestServer(repository);
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  /** Makes the model's only instance busy; returns its answer, to await (wrapped: an async function would await it). */
  async function occupy(model: string): Promise<{ running: Promise<ModelInferResponse | ServiceError> }> {
    const running = settled(client.infer(x(model)));
    await engineShows(url, model, 1, 0);
    return { running };
  }

  /** Asserts the answers succeeded, then waits until the engine has nothing of the model left: /stats is final then. */
  async function assertServedThenIdle(model: string, answers: Promise<ModelInferResponse | ServiceError>[]): Promise<void> {
    for (const answer of await Promise.all(answers)) assert.ok(!isError(answer), isError(answer) ? `${Status[answer.code]}: ${answer.details}` : '');
    await engineShows(url, model, 0, 0);
  }

  it('refuses a request past max_queue_size with UNAVAILABLE and a retry-after trailer, and never computes it', async () => {
    const { running } = await occupy('queue_of_1');
    // Two more: whichever comes first takes the only place in the queue.
    const outcomes = await Promise.all([settled(client.infer(x('queue_of_1'))), settled(client.infer(x('queue_of_1')))]);
    const refused = outcomes.filter(isError);
    assert.equal(refused.length, 1, 'one of the two is refused');
    assert.equal(refused[0]!.code, Status.UNAVAILABLE);
    assert.match(refused[0]!.details, /the queue of this model is full \(max_queue_size 1\)/);
    assert.deepEqual(refused[0]!.metadata.get('retry-after'), ['1']);
    await assertServedThenIdle('queue_of_1', [running, ...outcomes.filter((o) => !isError(o)).map((o) => Promise.resolve(o))]);

    const stats = await modelStatistics(url, 'queue_of_1');
    assert.equal(stats.execution_count, 2);
    assert.equal(stats.inference_count, 2);
    // And the queue takes requests again.
    assert.ok(!isError(await settled(client.infer(x('queue_of_1')))));
  });

  it('refuses a request to a full queue before its tensors are read or judged: UNAVAILABLE, not the INVALID_ARGUMENT its contents would get', async () => {
    const { running } = await occupy('queue_of_1');
    const queued = settled(client.infer(x('queue_of_1')));
    await schedulerShows(url, 'queue_of_1', 1);
    // 3 bytes of raw contents for 256 FP32 elements: decoding them would be INVALID_ARGUMENT.
    const malformed: ModelInferRequest = { ...x('queue_of_1'), raw_input_contents: [new Uint8Array(3)] };
    const refused = await settled(client.infer(malformed));
    assert.ok(isError(refused));
    assert.equal(refused.code, Status.UNAVAILABLE, refused.details);
    assert.match(refused.details, /the queue of this model is full \(max_queue_size 1\)/);
    await assertServedThenIdle('queue_of_1', [running, queued]);
    // With room in the queue, the same message is judged on its contents.
    const judged = await settled(client.infer(malformed));
    assert.ok(isError(judged));
    assert.equal(judged.code, Status.INVALID_ARGUMENT, judged.details);
  });

  it('answers DEADLINE_EXCEEDED to a request whose deadline passes in the queue, never computes it, and serves one with a generous deadline', async () => {
    const { running } = await occupy('deadlines');
    let runningAnswered = false;
    void running.then(() => (runningAnswered = true));
    const generous = settled(client.infer(x('deadlines'), { deadlineMs: 60_000 }));
    const expired = await settled(client.infer(x('deadlines'), { deadlineMs: 200 }));
    assert.equal(runningAnswered, false, 'the run ahead was still going');
    assert.ok(isError(expired), 'the short deadline passed');
    assert.equal(expired.code, Status.DEADLINE_EXCEEDED, expired.details);
    await assertServedThenIdle('deadlines', [running, generous]);

    const stats = await modelStatistics(url, 'deadlines');
    assert.equal(stats.execution_count, 2, 'the run ahead and the generous one, not the expired one');
    assert.equal(stats.inference_count, 2);
    assert.equal(stats.inference_stats.fail.count, 1);
  });

  it('answers DEADLINE_EXCEEDED to a request whose deadline passes while it runs; the run ends, and is not counted as an inference', async () => {
    const expired = await settled(client.infer(x('short_run'), { deadlineMs: 200 }));
    assert.ok(isError(expired));
    assert.equal(expired.code, Status.DEADLINE_EXCEEDED, expired.details);
    await engineShows(url, 'short_run', 0, 0);
    const stats = await modelStatistics(url, 'short_run');
    assert.equal(stats.execution_count, 1);
    assert.equal(stats.inference_count, 0);
    assert.equal(stats.inference_stats.fail.count, 1);
  });

  it('drops a queued call the client cancels: the client sees CANCELLED, the server never computes it, and serves the next one', async () => {
    const { running } = await occupy('cancels');
    const call = client.start('ModelInfer', x('cancels'));
    const cancelled = settled(call.response);
    await schedulerShows(url, 'cancels', 1);
    call.cancel();
    const outcome = await cancelled;
    assert.ok(isError(outcome));
    assert.equal(outcome.code, Status.CANCELLED);
    // The server has seen the cancel once the request has left its queue, while the run ahead goes on.
    await schedulerShows(url, 'cancels', 0);
    const next = settled(client.infer(x('cancels')));
    await assertServedThenIdle('cancels', [running, next]);

    const stats = await modelStatistics(url, 'cancels');
    assert.equal(stats.execution_count, 2, 'the run ahead and the next one, not the cancelled one');
    assert.equal(stats.inference_count, 2);
  });

  it('drops the queued requests of a stream the client cancels, and never computes them', async () => {
    const { running } = await occupy('stream_cancels');
    const stream = client.stream();
    stream.write(x('stream_cancels', 'queued'));
    await schedulerShows(url, 'stream_cancels', 1);
    stream.cancel();
    await assert.rejects(stream.finished, (error: ServiceError) => error.code === Status.CANCELLED);
    await schedulerShows(url, 'stream_cancels', 0);
    await assertServedThenIdle('stream_cancels', [running]);
    assert.deepEqual(stream.answers, []);
    const stats = await modelStatistics(url, 'stream_cancels');
    assert.equal(stats.execution_count, 1);
    assert.equal(stats.inference_count, 1);
  });

  it('answers the requests of a stream in the order they complete: a fast one sent after a slow one comes first', async () => {
    const stream = client.stream();
    stream.write(x('slow', 'slow'));
    stream.write(classify('fast'));
    stream.end();
    const answers = await stream.finished;
    assert.deepEqual(answers.map((a) => a.infer_response?.id), ['fast', 'slow']);
    for (const answer of answers) assert.equal(answer.error_message ?? '', '', answer.error_message);
    assert.deepEqual(outputOf(answers[0]!.infer_response!, 'label').values, [2n]);
    assert.deepEqual(answers[1]!.infer_response!.outputs.map((o) => [o.name, o.shape]), [['y', ['1', '256']]]);
  });
});
