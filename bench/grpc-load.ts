/**
 * Load generator child process for the gRPC target: a closed loop of unary ModelInfer calls, each
 * of `concurrency` slots issuing its next call as soon as its last one has ended, spread
 * round-robin over `channels` HTTP/2 connections (as a gRPC client multiplexes its calls as streams
 * of a few connections rather than open one per call). Both servers get this same generator.
 *
 * The client is a minimal gRPC one on node:http2 (as bench/paced-load.ts is a minimal HTTP/1.1
 * one): a POST of the length-prefixed request to /inference.GRPCInferenceService/ModelInfer, the
 * status read from the trailers (or from the headers of a trailers-only answer). Not grpc-js's
 * client, which on this 2-core machine costs ~2.3x more CPU per call (measured: ~125 µs against
 * ~55 µs) than this one, and more than twice what a bare grpc-js server spends answering a call:
 * with it the load generator, not the server, set the bare baseline's rate (~8,500 against
 * ~14,000 calls/s here), and the ratio flattered the server. As autocannon does with its request buffer, the request (bench/grpc.ts, raw classifier
 * input) is serialized once and the same bytes are sent on every call; an answer counts as OK when
 * its grpc-status is 0 and it holds one whole message, which is not deserialized: the bench checked
 * one answer of each server, with grpc-js's client, before the load.
 *
 * Warm-up (not recorded), then the measured window: the calls that end within it, their latency
 * from the call to its end. A call not ended after `timeoutSeconds` is cancelled and counted as
 * DEADLINE_EXCEEDED. When the window ends no call is issued any more, the calls in flight are
 * waited for (not counted) and the connections closed.
 *
 * Stdout, one JSON object a line: {"event":"measuring"} when the window starts and
 * {"event":"measured"} when it ends (the bench samples CPU and /stats between the two), then the
 * result, a GrpcLoadResult (bench/grpc.ts).
 *
 * Argv: <host:port> <durationSeconds> <warmupSeconds> <concurrency> [channels=4] [timeoutSeconds=10]
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODEL_INFER, classifierGrpcRequest, type GrpcLoadResult } from './grpc.js';
import { summarize } from './stats.js';

const [address, durationArg, warmupArg, concurrencyArg, channelsArg, timeoutArg] = process.argv.slice(2);
const durationSeconds = Number(durationArg);
const warmupSeconds = Number(warmupArg);
const concurrency = Number(concurrencyArg);
const channelCount = Number(channelsArg ?? 4);
const timeoutMs = Number(timeoutArg ?? 10) * 1000;
const positiveInteger = (n: number): boolean => Number.isInteger(n) && n >= 1;
if (!address || !(durationSeconds > 0) || !(warmupSeconds >= 0) || !positiveInteger(concurrency) || !positiveInteger(channelCount) || !(timeoutMs > 0)) {
  process.stderr.write('usage: grpc-load <host:port> <durationSeconds> <warmupSeconds> <concurrency> [channels] [timeoutSeconds]\n');
  process.exit(2);
}

const event = (name: string): boolean => process.stdout.write(`${JSON.stringify({ event: name })}\n`);

/** gRPC status names by code (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
const STATUS_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

// ---- the request, built once -----------------------------------------------------------------

const message = MODEL_INFER.requestSerialize(classifierGrpcRequest());
/** gRPC's length-prefixed message: a compressed flag (0), the length (4 bytes big-endian), the message. */
const frame = Buffer.alloc(5 + message.length);
frame.writeUInt32BE(message.length, 1);
message.copy(frame, 5);
const headers = {
  [constants.HTTP2_HEADER_METHOD]: 'POST',
  [constants.HTTP2_HEADER_PATH]: MODEL_INFER.path,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
  [constants.HTTP2_HEADER_TE]: 'trailers',
};

// ---- connections -----------------------------------------------------------------------------

const sessions: ClientHttp2Session[] = [];
for (let i = 0; i < channelCount; i++) {
  const session = connect(`http://${address}`);
  session.on('error', () => undefined); // its streams fail too, and are counted there
  sessions.push(session);
}
await Promise.race([
  Promise.all(sessions.map((session) => once(session, 'connect'))),
  sleep(timeoutMs).then(() => Promise.reject(new Error(`could not connect to ${address} within ${timeoutMs} ms`))),
]);

// ---- the closed loop -------------------------------------------------------------------------

type Phase = 'warm-up' | 'measuring' | 'draining';
let phase: Phase = warmupSeconds > 0 ? 'warm-up' : 'measuring';
let ok = 0;
let warmupErrors = 0;
const errorsByStatus: Record<string, number> = {};
const latenciesMs: number[] = [];
let inFlight = 0;
let drained: () => void = () => undefined;
/** The call in flight of each slot, for the deadline sweep. */
const calls: ({ stream: ClientHttp2Stream; started: number; timedOut: boolean } | undefined)[] = new Array(concurrency).fill(undefined);

function ended(slot: number, started: number, status: string): void {
  const now = performance.now();
  calls[slot] = undefined;
  inFlight--;
  if (phase === 'measuring') {
    if (status === 'OK') {
      ok++;
      latenciesMs.push(now - started);
    } else errorsByStatus[status] = (errorsByStatus[status] ?? 0) + 1;
  } else if (phase === 'warm-up' && status !== 'OK') warmupErrors++;
  if (phase !== 'draining') issue(slot);
  else if (inFlight === 0) drained();
}

function issue(slot: number): void {
  const session = sessions[slot % channelCount]!;
  const started = performance.now();
  inFlight++;
  if (session.closed || session.destroyed) {
    // The connection is gone: this slot stops (the run's errors and OK count tell).
    calls[slot] = undefined;
    inFlight--;
    if (phase === 'measuring') errorsByStatus.UNAVAILABLE = (errorsByStatus.UNAVAILABLE ?? 0) + 1;
    else if (phase === 'warm-up') warmupErrors++;
    if (phase === 'draining' && inFlight === 0) drained();
    return;
  }
  const stream = session.request(headers);
  const call = { stream, started, timedOut: false };
  calls[slot] = call;
  let status: string | undefined;
  let received = 0;
  let expected = -1;
  const statusOf = (h: IncomingHttpHeaders): void => {
    const code = h['grpc-status'];
    if (typeof code === 'string') status = STATUS_NAMES[Number(code)] ?? `status ${code}`;
  };
  stream.on('response', (h) => {
    if (h[':status'] !== 200) status = `HTTP ${h[':status']}`;
    else statusOf(h); // a trailers-only answer
  });
  stream.on('trailers', statusOf);
  stream.on('data', (chunk: Buffer) => {
    if (received === 0 && chunk.length >= 5) expected = 5 + chunk.readUInt32BE(1);
    received += chunk.length;
  });
  stream.on('error', () => {
    status ??= 'UNAVAILABLE';
  });
  stream.on('close', () => {
    if (call.timedOut) status = 'DEADLINE_EXCEEDED';
    else if (status === 'OK' && received !== expected) status = 'INTERNAL (no whole message)';
    ended(slot, started, status ?? 'UNKNOWN (no grpc-status)');
  });
  stream.end(frame);
}

const sweep = setInterval(() => {
  const late = performance.now() - timeoutMs;
  for (const call of calls) {
    if (call && !call.timedOut && call.started < late) {
      call.timedOut = true;
      call.stream.close(constants.NGHTTP2_CANCEL);
    }
  }
}, 250);

for (let slot = 0; slot < concurrency; slot++) issue(slot);
if (phase === 'warm-up') {
  await sleep(warmupSeconds * 1000);
  phase = 'measuring';
}
event('measuring');
const start = performance.now();
await sleep(durationSeconds * 1000);
phase = 'draining';
const measuredMs = performance.now() - start;
event('measured');
if (inFlight > 0) await Promise.race([new Promise<void>((resolve) => (drained = resolve)), sleep(timeoutMs + 1000)]);
clearInterval(sweep);
for (const session of sessions) session.destroy();

const errors = Object.values(errorsByStatus).reduce((a, b) => a + b, 0);
process.stdout.write(
  `${JSON.stringify({
    requestsPerSecond: ok / (measuredMs / 1000),
    requests: ok,
    durationSeconds: measuredMs / 1000,
    errors,
    errorsByStatus,
    warmupErrors,
    ...summarize(latenciesMs),
    concurrency,
    channels: channelCount,
    requestBytes: message.length,
  } satisfies GrpcLoadResult)}\n`,
);
process.exit(0);
