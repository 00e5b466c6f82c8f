import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResponseStream, type StreamOutcome } from '../../../../src/domain/shared/response-stream.js';

describe('ResponseStream (many responses per request)', () => {
  it('reads the responses in order, the last flagged final, then ends', async () => {
    const stream = new ResponseStream<number>(8);
    stream.push(1);
    stream.push(2);
    stream.end(3);
    const read = [];
    for await (const response of stream) read.push(response);
    assert.deepEqual(read, [{ value: 1, final: false }, { value: 2, final: false }, { value: 3, final: true }]);
  });

  it('a consumer waiting for the next response gets it when it is sent', async () => {
    const stream = new ResponseStream<string>(2);
    const next = stream.next();
    stream.push('a');
    assert.deepEqual(await next, { value: { value: 'a', final: false }, done: false });
  });

  it('throws a failure after the responses sent before it', async () => {
    const stream = new ResponseStream<number>(4);
    stream.push(1);
    stream.fail(new Error('broke'));
    const read: number[] = [];
    await assert.rejects(async () => {
      for await (const { value } of stream) read.push(value);
    }, /broke/);
    assert.deepEqual(read, [1]);
  });

  it('says when it is full, and calls the drain listener once a read takes it below its capacity', async () => {
    const stream = new ResponseStream<number>(2);
    let drains = 0;
    stream.onDrain(() => drains++);
    stream.push(1);
    assert.equal(stream.full, false);
    stream.push(2);
    assert.equal(stream.full, true);
    await stream.next();
    assert.equal(drains, 1);
    assert.equal(stream.full, false);
    await stream.next();
    assert.equal(drains, 1, 'only the read that ended fullness drains');
  });

  it('a consumer leaving its loop early cancels: the producer hears it, nothing more is sent, the outcome is cancelled', async () => {
    const stream = new ResponseStream<number>(8);
    const heard: string[] = [];
    const outcomes: StreamOutcome[] = [];
    stream.onCancel((reason) => heard.push(reason));
    stream.onClose((outcome) => outcomes.push(outcome));
    stream.push(1);
    stream.push(2);
    for await (const { value } of stream) if (value === 1) break;
    assert.deepEqual(heard, ['cancelled']);
    assert.equal(stream.cancelled, 'cancelled');
    stream.push(3);
    assert.equal(stream.buffered, 0);
    assert.deepEqual(outcomes, [{ kind: 'cancelled', reason: 'cancelled' }]);
  });

  it('reading to the final response does not cancel; close listeners hear completed, once', async () => {
    const stream = ResponseStream.of('only');
    const outcomes: StreamOutcome[] = [];
    stream.onClose((outcome) => outcomes.push(outcome));
    for await (const response of stream) assert.deepEqual(response, { value: 'only', final: true });
    assert.equal(stream.cancelled, undefined);
    stream.cancel();
    assert.deepEqual(outcomes, [{ kind: 'completed' }]);
  });
});
