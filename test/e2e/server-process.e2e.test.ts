import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
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

  // Timeouts: without the checks these servers would start and serve, and the test would wait for an exit forever.
  it('refuses a MODEL_REPOSITORY that does not exist, or is a file, naming it and why (exit code 2, nothing served)', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onnx-serving-missing-'));
    try {
      const file = join(dir, 'a-file');
      writeFileSync(file, 'not a directory');
      for (const [repository, why] of [
        [join(dir, 'no-such-directory'), 'does not exist'],
        [file, 'is not a directory'],
      ] as const) {
        const port = await freePort();
        const server = runServer({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: String(port), GRPC_PORT: String(await freePort()), METRICS_PORT: '0' });
        try {
          const [code] = await server.exited;
          assert.equal(code, 2, server.output().stderr);
          assert.equal(server.output().stderr, `invalid configuration: MODEL_REPOSITORY=${JSON.stringify(repository)}: ${why} (${repository})\n`);
          await assert.rejects(fetch(`http://127.0.0.1:${port}/v2/health/ready`), 'nothing listens');
        } finally {
          server.child.kill('SIGKILL');
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('a port already in use', () => {
    let taken: Server;
    let takenPort: number;

    before(async () => {
      taken = createServer().listen(0, '127.0.0.1');
      await once(taken, 'listening');
      takenPort = (taken.address() as { port: number }).port;
    });

    after(() => taken.close());

    for (const variable of ['HTTP_PORT', 'GRPC_PORT', 'METRICS_PORT'] as const) {
      it(`${variable}: exit code 2 naming the variable and the port, no stack trace`, { timeout: 60_000 }, async () => {
        const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
        const ports = { HTTP_PORT: String(await freePort()), GRPC_PORT: String(await freePort()), METRICS_PORT: '0', [variable]: String(takenPort) };
        const server = runServer({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', ...ports, LOG_LEVEL: 'info' });
        const [code] = await server.exited.finally(() => rmSync(repository, { recursive: true, force: true }));
        const { stdout, stderr } = server.output();
        assert.equal(code, 2, stderr);
        assert.match(stderr, new RegExp(`^invalid configuration: ${variable}=${takenPort}: 127\\.0\\.0\\.1:${takenPort} is already in use .*\\(EADDRINUSE\\)$`, 'm'));
        assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
        assert.doesNotMatch(stdout, /serving HTTP on/, 'never says it serves');
      });
    }
  });

  it('with every port 0, says in its start-up line the ports it really bound, and serves on them', { timeout: 60_000 }, async () => {
    const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
    const server = runServer({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: '0', GRPC_PORT: '0', METRICS_PORT: '0', SHUTDOWN_DRAIN_DELAY_MS: '0', LOG_LEVEL: 'info' });
    let client: InferenceClient | undefined;
    try {
      const startLine = /serving HTTP on 127\.0\.0\.1:(\d+), gRPC on 127\.0\.0\.1:(\d+), metrics on 127\.0\.0\.1:(\d+) \(GET \/metrics\)/;
      let line = startLine.exec(server.output().stdout);
      while (!line) {
        const exited = await Promise.race([once(server.child.stdout, 'data').then(() => false), server.exited.then(() => true)]);
        assert.ok(!exited, `the server exited: ${server.output().stderr}`);
        line = startLine.exec(server.output().stdout);
      }
      const [http, grpc, metrics] = line.slice(1).map(Number);
      for (const port of [http, grpc, metrics]) assert.ok(port! > 0, line[0]);
      assert.equal((await fetch(`http://127.0.0.1:${http}/v2/health/live`)).status, 200);
      client = new InferenceClient(`127.0.0.1:${grpc}`);
      assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      const scraped = await fetch(`http://127.0.0.1:${metrics}/metrics`);
      assert.equal(scraped.status, 200);
      assert.match(await scraped.text(), /process_cpu_user_seconds_total/);
    } finally {
      client?.close();
      server.child.kill('SIGTERM');
      await server.exited;
      rmSync(repository, { recursive: true, force: true });
    }
  });

  it('never writes a secret in a configuration error: ADMIN_TOKEN shows as ***', async () => {
    const server = runServer({ ADMIN_TOKEN: 'short-secret', HTTP_PORT: 'eighty' });
    const [code] = await server.exited;
    assert.equal(code, 2);
    const { stdout, stderr } = server.output();
    assert.match(stderr, /ADMIN_TOKEN=\*\*\*: must be at least 16 characters/);
    assert.match(stderr, /HTTP_PORT="eighty"/);
    assert.doesNotMatch(stdout + stderr, /short-secret/);
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
