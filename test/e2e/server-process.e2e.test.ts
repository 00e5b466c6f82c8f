import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { classifierModel, heavyModel } from '../../scripts/build-models.js';
import { schedulerShows } from '../support/engine-state.js';
import { freePort } from '../support/free-port.js';
import { InferenceClient } from '../support/grpc-client.js';
import { makeRepository } from '../support/test-server.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));


function runServer(env: Record<string, string>) {
  // Its own state directory, so that no run writes into the working tree.
  const stateDir = mkdtempSync(join(tmpdir(), 'onnx-serving-state-'));
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, STATE_DIR: stateDir, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.once('exit', () => rmSync(stateDir, { recursive: true, force: true }));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  return { child, exited, output: () => ({ stdout, stderr }) };
}

async function untilReady(url: string, server: ReturnType<typeof runServer>): Promise<void> {
  let ready = false;
  for (let attempt = 0; attempt < 600 && !ready; attempt++) {
    ready = await fetch(`${url}/v2/health/ready`).then((r) => r.ok, () => false);
    if (!ready) await sleep(50);
  }
  assert.ok(ready, `the server never became ready: ${server.output().stderr}`);
}

describe('the server process', () => {
  it('refuses a bad environment variable at start, naming it and its value', async () => {
    const server = runServer({ HTTP_PORT: 'eighty', LOG_LEVEL: 'loud' });
    const [code] = await server.exited;
    assert.equal(code, 2);
    const { stderr } = server.output();
    assert.match(stderr, /HTTP_PORT="eighty"/);
    assert.match(stderr, /LOG_LEVEL="loud"/);
  });

  it('honours its environment and writes one JSON access line per request, without bodies or credentials', async () => {
    const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
    const port = await freePort();
    const server = runServer({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: String(port), GRPC_PORT: String(await freePort()), METRICS_PORT: '0', SHUTDOWN_DRAIN_DELAY_MS: '0', LOG_LEVEL: 'info' });
    try {
      const url = `http://127.0.0.1:${port}`;
      await untilReady(url, server);
      const response = await fetch(`${url}/v2/models/classifier/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer very-secret-token' },
        body: JSON.stringify({ id: 'body-marker-1234', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] }),
      });
      assert.equal(response.status, 200);
      await response.text();
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const lines = server.output().stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line));
    const access = lines.filter((line) => line.req?.url === '/v2/models/classifier/infer');
    assert.equal(access.length, 1);
    assert.equal(access[0].model, 'classifier');
    assert.equal(access[0].version, '1');
    assert.equal(access[0].res.statusCode, 200);
    assert.equal(typeof access[0].duration_ms, 'number');
    const everything = server.output().stdout + server.output().stderr;
    assert.doesNotMatch(everything, /body-marker-1234/);
    assert.doesNotMatch(everything, /very-secret-token/);
  });

  it('with tracing on (OTEL_TRACES_EXPORTER), writes the trace and span ids on the lines of a request, HTTP and gRPC', async () => {
    const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
    const [port, grpcPort] = [await freePort(), await freePort()];
    // The console exporter writes spans to stdout too, as multi-line objects: only JSON lines are read below.
    const server = runServer({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: String(port), GRPC_PORT: String(grpcPort), METRICS_PORT: '0', SHUTDOWN_DRAIN_DELAY_MS: '0', LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'console' });
    const httpTrace = '5b8aa5a2d2c872e8321cf37308d69df2';
    const grpcTrace = '6c9bb6b3e3d983f9432d048419e7ae03';
    const client = new InferenceClient(`127.0.0.1:${grpcPort}`);
    try {
      const url = `http://127.0.0.1:${port}`;
      await untilReady(url, server);
      const response = await fetch(`${url}/v2/models/classifier/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: `00-${httpTrace}-051581bf3cb55c13-01`, authorization: 'Bearer very-secret-token' },
        body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] }),
      });
      assert.equal(response.status, 200);
      await response.text();
      await client.unary(
        'ModelInfer',
        { model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [6.7, 3.0, 5.2, 2.3] } }] },
        { metadata: { traceparent: `00-${grpcTrace}-051581bf3cb55c13-01` } },
      );
    } finally {
      client.close();
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const lines = server.output().stdout.split('\n').filter((line) => line.startsWith('{"level"')).map((line) => JSON.parse(line));
    const access = lines.find((line) => line.req?.url === '/v2/models/classifier/infer');
    assert.ok(access, 'the HTTP access line');
    assert.equal(access.trace_id, httpTrace);
    assert.match(access.span_id, /^[0-9a-f]{16}$/);
    const rpc = lines.find((line) => line.rpc === '/inference.GRPCInferenceService/ModelInfer');
    assert.ok(rpc, 'the gRPC access line');
    assert.equal(rpc.trace_id, grpcTrace);
    assert.equal(rpc.code, 0);
    assert.equal(rpc.model, 'classifier');
    assert.equal(rpc.version, '1');
    assert.equal(typeof rpc.queue_time_us, 'number');
    assert.doesNotMatch(server.output().stdout + server.output().stderr, /very-secret-token/);
  });

  describe('on SIGTERM (graceful shutdown)', () => {
    const slowModel = {
      name: 'slow',
      onnx: heavyModel(4096, 300),
      config: { max_batch_size: 0, instance_group: [{ count: 1, kind: 'KIND_CPU' }], parameters: { intra_op_thread_count: { string_value: '1' } } },
    };
    const x = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 256], datatype: 'FP32', data: new Array(256).fill(0.5) }] });

    async function startSlow(env: Record<string, string>) {
      const repository = await makeRepository([slowModel]);
      const port = await freePort();
      const server = runServer({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: String(port), GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'warn', ...env });
      const url = `http://127.0.0.1:${port}`;
      await untilReady(url, server);
      return { server, url };
    }

    it('reports not ready at once, answers every request it accepted (running and queued), then exits 0', async () => {
      const { server, url } = await startSlow({ SHUTDOWN_DRAIN_DELAY_MS: '500', SHUTDOWN_GRACE_MS: '30000' });
      try {
        const answers = [0, 1, 2].map(() => fetch(`${url}/v2/models/slow/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: x }).then((r) => r.status));
        await schedulerShows(url, 'slow', 2);
        server.child.kill('SIGTERM');
        let readiness = 200;
        for (let attempt = 0; attempt < 200 && readiness === 200; attempt++) {
          const ready = await fetch(`${url}/v2/health/ready`);
          readiness = ready.status;
          if (readiness === 503) assert.match(((await ready.json()) as { error: string }).error, /shutting down/);
          else await sleep(5);
        }
        assert.equal(readiness, 503, 'not ready during the drain delay, while still answering');
        assert.deepEqual(await Promise.all(answers), [200, 200, 200]);
        const [code] = await server.exited;
        assert.equal(code, 0, server.output().stderr);
        await assert.rejects(fetch(`${url}/v2/health/live`), 'it no longer accepts connections');
      } finally {
        server.child.kill('SIGKILL');
      }
    });

    it('exits at once on a second signal', async () => {
      const { server, url } = await startSlow({ SHUTDOWN_DRAIN_DELAY_MS: '60000', SHUTDOWN_GRACE_MS: '120000' });
      try {
        server.child.kill('SIGTERM');
        for (let attempt = 0; attempt < 200; attempt++) {
          if ((await fetch(`${url}/v2/health/ready`)).status === 503) break;
          await sleep(5);
        }
        server.child.kill('SIGTERM');
        const [code] = await server.exited;
        assert.equal(code, 130);
        assert.match(server.output().stderr, /SIGTERM again: exiting now/);
      } finally {
        server.child.kill('SIGKILL');
      }
    });

    it('exits with code 1 when the shutdown outlasts SHUTDOWN_GRACE_MS', async () => {
      const { server } = await startSlow({ SHUTDOWN_DRAIN_DELAY_MS: '60000', SHUTDOWN_GRACE_MS: '300' });
      try {
        server.child.kill('SIGTERM');
        const [code] = await server.exited;
        assert.equal(code, 1);
        assert.match(server.output().stderr, /longer than SHUTDOWN_GRACE_MS \(300 ms\)/);
      } finally {
        server.child.kill('SIGKILL');
      }
    });
  });
});
