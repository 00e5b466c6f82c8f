import type { ServerDuplexStream } from '@grpc/grpc-js';
import { DeferredContents } from './deferred-tensor-contents.js';

/** What a stream may hold before it stops reading. */
export interface StreamLimits {
  /** Requests handled at once. */
  readonly maxInFlight: number;
  /** GRPC_STREAM_MAX_BUFFERED_BYTES: bytes held (see {@link serveConcurrently}). */
  readonly maxBufferedBytes: number;
  /** Told of every change in the bytes the stream holds, and of each pause (metrics). */
  readonly observer?: StreamFlowObserver;
}

export interface StreamFlowObserver {
  /** The bytes held changed by `deltaBytes` (positive or negative); a stream's changes sum to 0 once it is over. */
  buffered(deltaBytes: number): void;
  /** Reading stopped because the stream held its limit. */
  paused(): void;
}

/**
 * Serves a bidirectional stream whose requests are independent: each is handled as soon as it
 * arrives (so requests of one stream batch together in the scheduler), and each answer is written
 * when it is ready, in completion order. A request may have many answers (Triton's decoupled
 * mode: a generative model answers each token): `handle` gives them as an iterable (a
 * ResponseStream's mapping, or one answer in an array), read one at a time, the next only once the
 * previous one has been sent, so a client that reads slowly leaves them in the request's own
 * bounded buffer, where the producer sees it. When the client half-closes, the stream ends after
 * the last answer; when it cancels, nothing more is written and the requests' answers are cancelled
 * (their iterables returned). `handle` must not throw, nor its answers (errors are answers).
 *
 * Flow control, in bytes: the stream holds its requests in flight and the answers written but not
 * yet sent (its client not reading them: HTTP/2 flow control stops the sending, and grpc-js calls
 * a write back only once the message has gone). Reading stops while what it holds, plus an answer
 * for each request in flight (estimated at the mean answer so far; before a first answer gives the
 * measure, at an eighth of the limit, so about 8 requests run at once), reaches `maxBufferedBytes`,
 * or while `maxInFlight` requests are handled, and resumes as answers go out. A client that writes and
 * never reads therefore makes the server hold about `maxBufferedBytes` (plus one request and one
 * answer), not everything it sends.
 */
/** Requests a stream runs at once before its first answer (each answer then taken for 1/8 of the limit). */
const FIRST_ANSWERS = 8;

export function serveConcurrently<Req, Res>(call: ServerDuplexStream<Req, Res>, handle: (request: Req) => Promise<Iterable<Res> | AsyncIterable<Res>>, limits: StreamLimits): Promise<void> {
  return new Promise((resolve) => {
    let inFlight = 0;
    let requestBytes = 0;
    let unsentBytes = 0;
    let answers = 0;
    let answerBytes = 0;
    let clientDone = false;
    let finished = false;
    let closed = false;
    let paused = false;
    let endCall!: () => void;
    const ended = new Promise<void>((resolve) => (endCall = resolve));

    const account = (deltaBytes: number) => {
      if (!closed && deltaBytes !== 0) limits.observer?.buffered(deltaBytes);
    };
    // Until a first answer says how large answers are, each is taken for an eighth of the limit.
    const expectedAnswer = () => (answers > 0 ? answerBytes / answers : limits.maxBufferedBytes / FIRST_ANSWERS);
    const held = () => unsentBytes + requestBytes + inFlight * expectedAnswer();
    const adjustReading = () => {
      if (closed) return;
      const full = inFlight >= limits.maxInFlight || held() >= limits.maxBufferedBytes;
      if (full && !paused) {
        paused = true;
        call.pause();
        limits.observer?.paused();
      } else if (!full && paused) {
        paused = false;
        call.resume();
      }
    };
    const finish = () => {
      if (finished) return;
      finished = true;
      resolve();
    };
    // Cancelled or broken: grpc-js drops the unsent answers (their callbacks never come), so the count goes too.
    const close = () => {
      account(-(unsentBytes + requestBytes));
      closed = true;
      endCall();
      finish();
    };
    const settle = () => {
      if (clientDone && inFlight === 0 && !call.cancelled && !finished) {
        call.end();
        finish();
      }
    };

    call.on('data', (request: Req) => {
      const size = approximateMessageBytes(request);
      inFlight++;
      requestBytes += size;
      account(size);
      adjustReading();
      void handle(request).then(async (responses) => {
        try {
          let previous: Promise<void> | undefined;
          for await (const response of responses) {
            // An answer is written once the one before it has gone (or the call has ended).
            if (previous) await Promise.race([previous, ended]);
            if (call.cancelled || closed) break; // returns the iterable: its producer is cancelled
            const bytes = approximateMessageBytes(response);
            answers++;
            answerBytes += bytes;
            unsentBytes += bytes;
            account(bytes);
            previous = new Promise<void>((resolve) =>
              call.write(response, () => {
                resolve();
                if (closed) return;
                unsentBytes -= bytes;
                account(-bytes);
                adjustReading();
              }),
            );
            adjustReading();
          }
        } finally {
          inFlight--;
          requestBytes -= size;
          account(-size);
          adjustReading();
          settle();
        }
      });
    });
    call.on('end', () => {
      clientDone = true;
      settle();
    });
    call.on('cancelled', close);
    // A stream error (the client reset it) ends the call like a cancel; grpc-js has already closed it.
    call.on('error', close);
  });
}

/**
 * About how many bytes a decoded message takes on the wire: the bytes of its buffers and strings,
 * 8 per number or boolean. Arrays of numbers are counted by their length, not walked, so the
 * estimate costs little beside the message's own encoding.
 */
export function approximateMessageBytes(value: unknown): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'string') return value.length;
  if (typeof value !== 'object') return 8;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  // Typed contents not decoded yet: their wire bytes (the object also holds their protobuf type,
  // a graph with cycles that must not be walked).
  if (value instanceof DeferredContents) return value.byteLength;
  if (Array.isArray(value)) {
    if (value.length === 0) return 0;
    const first: unknown = value[0];
    if (typeof first === 'number' || typeof first === 'boolean' || typeof first === 'bigint') return value.length * 8;
    let total = 0;
    for (const item of value) total += approximateMessageBytes(item);
    return total;
  }
  let total = 0;
  for (const key in value) total += key.length + approximateMessageBytes((value as Record<string, unknown>)[key]);
  return total;
}
