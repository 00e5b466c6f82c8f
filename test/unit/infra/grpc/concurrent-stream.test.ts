import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { approximateMessageBytes, serveConcurrently } from '../../../../src/infra/grpc/concurrent-stream.js';
import { DeferredContents } from '../../../../src/infra/grpc/deferred-tensor-contents.js';

/**
 * A ModelStreamInfer call as grpc-js gives it (an object-mode duplex) whose client never reads:
 * a written answer's callback comes only when the test lets it go, as HTTP/2 flow control does.
 */
class UnreadCall extends Duplex {
  cancelled = false;
  readonly unsent: (() => void)[] = [];

  constructor() {
    super({ objectMode: true });
  }

  override _read(): void {}

  override _write(_chunk: unknown, _encoding: string, callback: () => void): void {
    this.unsent.push(callback);
  }

  /** The client reads what was sent so far (the duplex then hands it the next answer). */
  readAll(): void {
    for (const callback of this.unsent.splice(0)) callback();
  }
}

const ANSWER_BYTES = 100 * 1024;
const LIMIT = 1024 * 1024;

async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) await nextTurn();
}

test('a client that writes and never reads: the stream stops reading once it holds its limit in bytes, and resumes as answers go', async () => {
  const call = new UnreadCall();
  let handled = 0;
  let held = 0;
  let peak = 0;
  let pauses = 0;
  const done = serveConcurrently(
    call as unknown as ServerDuplexStream<{ id: string }, { id: string; raw: Buffer }>,
    async (request) => {
      handled++;
      return [{ id: request.id, raw: Buffer.alloc(ANSWER_BYTES) }];
    },
    {
      maxInFlight: 256,
      maxBufferedBytes: LIMIT,
      observer: {
        buffered: (delta) => {
          held += delta;
          peak = Math.max(peak, held);
        },
        paused: () => pauses++,
      },
    },
  );
  const requests = 1000;
  for (let i = 0; i < requests; i++) call.push({ id: String(i) });
  await settled();

  // Today's flow control read on until 256 requests were in flight, which fast requests never reach: all 1000 answered into memory.
  assert.ok(handled < requests, `handled ${handled} of ${requests} requests while none of the answers was read`);
  assert.ok(handled <= LIMIT / ANSWER_BYTES + 2, `handled ${handled} requests, past what ${LIMIT} bytes hold`);
  assert.ok(peak <= LIMIT + 2 * ANSWER_BYTES, `held ${peak} bytes at most, past the limit of ${LIMIT}`);
  assert.ok(pauses >= 1);
  assert.equal(call.writableLength, handled, "every answer is written, none sent");

  // The client reads: the stream resumes, and every request is answered in the end.
  while (handled < requests) {
    call.readAll();
    await settled();
    assert.ok(held <= LIMIT + 2 * ANSWER_BYTES, `held ${held} bytes`);
  }
  call.push(null);
  while (call.writableLength > 0 || call.unsent.length > 0) {
    call.readAll();
    await settled();
  }
  await done;
  assert.equal(held, 0, 'every byte counted is uncounted once sent');
});

test('a cancelled stream counts nothing more: its unsent answers leave the count', async () => {
  const call = new UnreadCall();
  let held = 0;
  const done = serveConcurrently(
    call as unknown as ServerDuplexStream<{ id: string }, { raw: Buffer }>,
    async () => [{ raw: Buffer.alloc(ANSWER_BYTES) }],
    { maxInFlight: 256, maxBufferedBytes: LIMIT, observer: { buffered: (delta) => (held += delta), paused: () => undefined } },
  );
  for (let i = 0; i < 50; i++) call.push({ id: String(i) });
  await settled();
  assert.ok(held > 0);
  call.cancelled = true;
  call.emit('cancelled');
  await done;
  assert.equal(held, 0);
});

test('approximateMessageBytes counts buffers, strings and numbers without walking numeric arrays', () => {
  assert.equal(approximateMessageBytes({ raw: [Buffer.alloc(1000)] }), 3 + 1000);
  assert.equal(approximateMessageBytes({ v: new Array(100).fill(1.5) }), 1 + 800);
  assert.equal(approximateMessageBytes({ s: 'abc', n: 1, none: undefined }), 1 + 3 + 1 + 8 + 4);
});

test('approximateMessageBytes counts typed contents not decoded yet by their wire bytes, without walking their protobuf type', () => {
  // A type inside a root: its parent points back at the root, which lists it (a cycle).
  const root = new protobuf.Root().add(new protobuf.Type('InferTensorContents').add(new protobuf.Field('fp32_contents', 6, 'float', 'repeated')));
  const contents = new DeferredContents(new Uint8Array(4096), root.lookupType('InferTensorContents'));
  assert.equal(approximateMessageBytes({ inputs: [{ name: 'x', contents }] }), 'inputs'.length + 'name'.length + 1 + 'contents'.length + 4096);
});
