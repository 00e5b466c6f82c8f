import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { freePort } from '../support/free-port.js';
import { InferenceClient } from '../support/grpc-client.js';
import { closedLoop, grpcInfer, httpPost, latencyOf, loadFigures, report, succeeded, tally, type Answer, type Outcome } from '../support/load.js';
import { makeRepository } from '../support/test-server.js';

/**
 * Fault suite 2: SIGTERM to the real server process while HTTP and gRPC clients keep it busy on a
 * model whose every run takes 50 ms (injected latency), so that requests are queued and running
 * when the signal comes. Each client goes on until the server refuses its connection.
 */
const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const DRAIN_DELAY_MS = 1000;
const GRACE_MS = 15_000;
const ROW = [6.7, 3.0, 5.2, 2.3];
const HTTP_BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: ROW }] });
const GRPC_REQUEST = { model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROW } }] };
const CLIENTS = 12; // 2 of 3 HTTP, 1 of 3 gRPC

/** No connection: the server had stopped listening (HTTP ECONNREFUSED; gRPC's UNAVAILABLE without a connection). */
function connectionRefused(answer: Answer): boolean {
  if (answer.transport === 'http') return answer.status === 'ECONNREFUSED';
  return answer.status === 'UNAVAILABLE' && /ECONNREFUSED|No connection established/.test(answer.message ?? '');
}

/** Refused by the server itself during the shutdown: 503 / UNAVAILABLE with its reason. */
function refusedWhileDraining(answer: Answer): boolean {
  return (answer.status === '503' || answer.status === 'UNAVAILABLE') && !connectionRefused(answer);
}

/** Answered after the signal (a refusal must be). */
function refusedAfter(outcome: Outcome, signalledAt: number): boolean {
  return outcome.sentAtMs + outcome.latencyMs >= signalledAt;
}

test('SIGTERM under HTTP+gRPC load: every request the server accepted is answered 200, readiness is 503 during the drain, exit 0 before SHUTDOWN_GRACE_MS', { timeout: 90_000 }, async (t) => {
  const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
  const stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-state-'));
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${httpPort}`;
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH,
      MODEL_REPOSITORY: repository,
      STATE_DIR: stateDir,
      HOST: '127.0.0.1',
      HTTP_PORT: String(httpPort),
      GRPC_PORT: String(grpcPort),
      METRICS_PORT: '0',
      LOG_LEVEL: 'info', // the access lines tell which requests the server took in
      SHUTDOWN_DRAIN_DELAY_MS: String(DRAIN_DELAY_MS),
      SHUTDOWN_GRACE_MS: String(GRACE_MS),
      FAULT_INJECTION: JSON.stringify({ classifier: { latency_ms: 50 } }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  const grpc = new InferenceClient(`127.0.0.1:${grpcPort}`);
  try {
    let ready = false;
    for (let attempt = 0; attempt < 600 && !ready; attempt++) {
      ready = await fetch(`${url}/v2/health/ready`).then((r) => r.ok, () => false);
      if (!ready) await sleep(50);
    }
    assert.ok(ready, `the server never became ready: ${stderr}`);

    // Each HTTP request names itself in its query string, which the server's access line shows.
    const load = closedLoop<Answer & { id?: string }>({
      clients: CLIENTS,
      send: async (client, sequence) => {
        if (client % 3 === 2) return grpcInfer(grpc, GRPC_REQUEST);
        const id = `${client}-${sequence}`;
        return { ...(await httpPost(`${url}/v2/models/classifier/infer?request=${id}`, HTTP_BODY)), id };
      },
      stopWhen: connectionRefused,
    });
    await load.further(100);

    const signalledAt = performance.now();
    child.kill('SIGTERM');
    // Readiness, polled until the server is gone.
    const readiness: { atMs: number; status: string; error?: string }[] = [];
    let gone = false;
    const poller = (async () => {
      while (!gone) {
        const { status, error } = await fetch(`${url}/v2/health/ready`).then(
          async (r) => ({ status: String(r.status), error: r.ok ? undefined : ((await r.json()) as { error: string }).error }),
          (e: Error & { cause?: { code?: string } }) => ({ status: e.cause?.code ?? e.name, error: undefined }),
        );
        readiness.push({ atMs: performance.now() - signalledAt, status, error });
        if (status === 'ECONNREFUSED') return;
        await sleep(10);
      }
    })();
    const [code, signal] = await Promise.race([exited, sleep(GRACE_MS + 10_000, undefined, { ref: false }).then(() => [null, 'still running'] as const)]);
    const exitMs = performance.now() - signalledAt;
    gone = true;
    await poller;
    // The clients stop on their first refused connection; one that has not seen it in 5 s is stopped.
    const outcomes = await Promise.race([load.finished, sleep(5000, undefined, { ref: false }).then(() => load.stop())]);

    // What the server took in, from its access lines: HTTP requests by the id in their URL, gRPC calls by status.
    const lines = stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
    const loggedHttp = new Map<string, number>();
    for (const line of lines) {
      const id = /[?&]request=([\d-]+)/.exec(line.req?.url ?? '')?.[1];
      if (id) loggedHttp.set(id, line.res?.statusCode);
    }
    const loggedGrpc = lines.filter((line) => line.rpc === '/inference.GRPCInferenceService/ModelInfer').map((line) => line.code as number);

    const http = outcomes.filter((o) => o.transport === 'http');
    const grpcOutcomes = outcomes.filter((o) => o.transport === 'grpc');
    const before = outcomes.filter((o) => o.sentAtMs < signalledAt);
    const afterSignal = outcomes.filter((o) => o.sentAtMs >= signalledAt);
    const servedAfterSignal = afterSignal.filter(succeeded);
    const show = (o: Outcome) => `${o.transport} ${o.status} sent at ${(o.sentAtMs - signalledAt).toFixed(0)} ms after SIGTERM: ${o.message}`;
    // HTTP: a request the server logged was taken in, and must have been answered as logged: 200, or 503 once shutting down.
    const takenIn = http.filter((o) => loggedHttp.has(o.id!));
    const takenInBadly = takenIn.filter((o) => o.status !== String(loggedHttp.get(o.id!)) || !(o.status === '200' || (o.status === '503' && refusedAfter(o, signalledAt))));
    const neverSeen = http.filter((o) => !loggedHttp.has(o.id!));
    const first503 = readiness.find((r) => r.status === '503');
    const count = (list: readonly Outcome[], what: (o: Outcome) => boolean) => list.filter(what).length;
    report(t, {
      ...loadFigures('load', outcomes),
      'sent before SIGTERM': `${before.length} (${count(before, succeeded)} succeeded)`,
      'sent after SIGTERM': `${afterSignal.length}: ${servedAfterSignal.length} succeeded, ${count(afterSignal, refusedWhileDraining)} refused with 503/UNAVAILABLE, ${count(afterSignal, connectionRefused)} connection refused, ${count(afterSignal, (o) => !succeeded(o) && !refusedWhileDraining(o) && !connectionRefused(o))} other`,
      'http taken in (access lines)': `${takenIn.length} of ${http.length}: ${count(takenIn, succeeded)} answered 200, ${count(takenIn, (o) => o.status === '503')} refused 503, ${takenInBadly.length} not answered as logged`,
      'http never seen by the server': `${neverSeen.length}: ${tally(neverSeen.map((o) => o.status))}`,
      'grpc calls logged by the server': `${loggedGrpc.length}: ${tally(loggedGrpc.map((c) => `code ${c}`))}`,
      'drain refusals': [...new Set(outcomes.filter(refusedWhileDraining).map((o) => `${o.transport} ${o.status} "${o.message}"`))].join('; ') || '-',
      'latency of the answers sent after SIGTERM': `p99 ${latencyOf(servedAfterSignal).p99Ms.toFixed(1)} ms, max ${latencyOf(servedAfterSignal).maxMs.toFixed(1)} ms`,
      readiness: `${readiness.length} polls, first 503 ("${first503?.error}") at ${first503?.atMs.toFixed(0)} ms after SIGTERM, statuses ${[...new Set(readiness.map((r) => r.status))].join(' -> ')}`,
      exit: `code ${code} signal ${signal} after ${exitMs.toFixed(0)} ms (drain delay ${DRAIN_DELAY_MS} ms, grace ${GRACE_MS} ms)`,
    });

    assert.ok(before.length >= 100 && before.every(succeeded), 'the load before the signal was served');
    assert.ok(servedAfterSignal.length > 0, 'requests sent after the signal were served during the drain');
    // HTTP: every request the server took in got the answer it logged: 200, or 503 once shutting down.
    assert.deepEqual(takenInBadly.slice(0, 10).map((o) => `${show(o)} (logged ${loggedHttp.get(o.id!)})`), [], `${takenInBadly.length} requests the server took in were not answered 200/503`);
    // The others never reached the app: refused by the closing HTTP server (Fastify's 503, before any
    // route, so not logged) or at the connection (refused, or reset unread), only once it was closing.
    for (const o of neverSeen) {
      assert.ok(!/^\d+$/.test(o.status) || o.status === '503', `an HTTP answer the server did not log: ${show(o)}`);
      assert.ok(refusedAfter(o, signalledAt), `refused before the signal: ${show(o)}`);
    }
    // gRPC: what the clients got is what the server logged: OK, or UNAVAILABLE refusals once shutting down.
    assert.deepEqual([...new Set(grpcOutcomes.map((o) => o.status))].filter((s) => s !== 'OK' && s !== 'UNAVAILABLE'), [], 'gRPC statuses other than OK and UNAVAILABLE');
    assert.equal(loggedGrpc.filter((c) => c === 0).length, count(grpcOutcomes, succeeded), 'gRPC calls answered OK: as the server logged');
    assert.equal(loggedGrpc.filter((c) => c !== 0).length, count(grpcOutcomes, refusedWhileDraining), 'gRPC calls refused by the server: as it logged');
    assert.deepEqual([...new Set(loggedGrpc)].filter((c) => c !== 0 && c !== 14), [], 'the server answered gRPC calls only OK or UNAVAILABLE');
    for (const o of outcomes.filter((o) => !succeeded(o))) assert.ok(refusedAfter(o, signalledAt), `refused before the signal: ${show(o)}`);
    assert.ok(count(outcomes, connectionRefused) >= 1, 'the clients ended on a refused connection: the server had stopped listening');

    assert.ok(first503, `readiness went 503 during the drain: ${JSON.stringify(readiness.slice(0, 5))}`);
    assert.equal(first503.error, 'the server is shutting down');
    assert.ok(readiness.every((r, i) => i === 0 || r.status !== '200' || readiness[i - 1]!.status === '200'), 'readiness never came back to 200');
    assert.equal(code, 0, `exit code (stderr: ${stderr})`);
    assert.ok(exitMs < GRACE_MS, `exited after ${exitMs.toFixed(0)} ms, before SHUTDOWN_GRACE_MS`);
    assert.ok(exitMs >= DRAIN_DELAY_MS, 'served on for SHUTDOWN_DRAIN_DELAY_MS first');
  } finally {
    grpc.close();
    child.kill('SIGKILL');
    await rm(repository, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  }
});
