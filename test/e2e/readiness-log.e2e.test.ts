import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { spawnServer } from '../support/server-process.js';
import { bearer, makeRepository } from '../support/test-server.js';

const TOKEN = 'readiness-log-test-token-0123';
const PINO_INFO = 30;

describe('readiness in the logs', () => {
  it('a probe answered 503 is no warning and carries no error: one line per change of the answer', async () => {
    const repository = await makeRepository([
      { name: 'fine', onnx: classifierModel() },
      { name: 'broken', onnx: new TextEncoder().encode('not an ONNX model') },
    ]);
    const server = await spawnServer({ MODEL_REPOSITORY: repository, STRICT_READINESS: 'true', LOG_LEVEL: 'info', ADMIN_TOKEN: TOKEN, SHUTDOWN_DRAIN_DELAY_MS: '0' });
    let probes = 0;
    const probe = async () => {
      probes++;
      const response = await fetch(`${server.url}/v2/health/ready`);
      return { status: response.status, text: await response.text() };
    };
    try {
      assert.ok(await server.untilLive(), server.stderr());
      // Not ready: while the repository loads, then because 'broken' failed (strict readiness).
      let answer = await probe();
      for (let attempt = 0; attempt < 600 && !answer.text.includes("'broken'"); attempt++) answer = await probe();
      assert.equal(answer.status, 503);
      for (let i = 0; i < 5; i++) assert.equal((await probe()).status, 503);
      const unload = await fetch(`${server.url}/v2/repository/models/broken/unload`, { method: 'POST', headers: bearer(TOKEN) });
      assert.equal(unload.status, 200, await unload.text());
      for (let i = 0; i < 3; i++) assert.equal((await probe()).status, 200);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      await server.stop();
      await rm(repository, { recursive: true, force: true });
    }
    const lines = server
      .stdout()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line));
    // Access lines (the readiness lines carry the request that saw the change, without a response).
    const probeLines = lines.filter((line) => line.req?.url === '/v2/health/ready' && line.res !== undefined);
    assert.deepEqual(probeLines.filter((line) => line.level >= PINO_INFO), [], 'no probe line at info or above');
    const readiness = lines.filter((line) => line.context === 'ServerReadiness');
    const messages = readiness.map((line) => line.msg as string);
    assert.ok(messages.length >= 2 && messages.length <= 3, `one line per change, not per probe (${probes} probes): ${JSON.stringify(messages)}`);
    for (let i = 1; i < messages.length; i++) assert.notEqual(messages[i], messages[i - 1]);
    assert.match(messages.at(-2)!, /^the server is not ready: not every model is READY: 'broken' version 1 is UNAVAILABLE/);
    assert.equal(messages.at(-1), 'the server is ready');
    assert.ok(readiness.every((line) => line.level === PINO_INFO && line.err === undefined), JSON.stringify(readiness));
  });
});
