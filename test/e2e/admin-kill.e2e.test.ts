import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { freePort } from '../support/free-port.js';
import { makeRepository } from '../support/test-server.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const TOKEN = 'kill-test-token-0123456789';
const KILLS = 6;


/** Starts the server process on the repository and state directory, and waits until it is ready. */
async function startServer(repository: string, stateDir: string) {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, MODEL_REPOSITORY: repository, STATE_DIR: stateDir, ADMIN_TOKEN: TOKEN, HOST: '127.0.0.1', HTTP_PORT: String(port), GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = once(child, 'exit');
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 600; attempt++) {
    if (await fetch(`${url}/v2/health/ready`).then((r) => r.ok, () => false)) return { child, exited, url };
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`the server never became ready (exit ${child.exitCode}): ${stderr}`);
}

const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

describe('kill -9 during admin writes', () => {
  let repository: string;
  let stateDir: string;
  before(async () => {
    const onnx = classifierModel();
    repository = await makeRepository([
      { name: 'classifier', version: 1, onnx },
      { name: 'classifier', version: 2, onnx },
    ]);
    stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-kill-state-'));
  });
  after(async () => {
    await rm(repository, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  });

  it('leaves a state the next start loads, serving the saved default version', async () => {
    let answeredSwaps = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      const server = await startServer(repository, stateDir);
      // Swaps back and forth, as fast as they are answered, until the process is killed.
      let swaps = 0;
      let firstAnswered!: () => void;
      const answered = new Promise<void>((resolve) => (firstAnswered = resolve));
      const swapping = (async () => {
        for (;;) {
          const version = String(1 + (swaps % 2));
          const answer = await fetch(`${server.url}/admin/models/classifier/default-version`, { method: 'PUT', headers: admin, body: JSON.stringify({ version }) }).catch(() => undefined);
          if (!answer) return;
          await answer.text();
          swaps++;
          if (swaps === 1) firstAnswered();
        }
      })();
      // Killed once a swap was saved (however long a swap takes on a busy machine), at a different
      // moment of the next ones each round.
      await Promise.race([answered, swapping]);
      await sleep((kill * 97) % 250);
      server.child.kill('SIGKILL');
      await server.exited;
      await swapping;
      answeredSwaps += swaps;

      const restarted = await startServer(repository, stateDir);
      try {
        const { models } = (await (await fetch(`${restarted.url}/admin/models`, { headers: admin })).json()) as {
          models: { name: string; default_version: string | null; serving_version: string | null }[];
        };
        const classifier = models.find((m) => m.name === 'classifier')!;
        assert.ok(classifier.serving_version === '1' || classifier.serving_version === '2', JSON.stringify(classifier));
        if (classifier.default_version !== null) assert.equal(classifier.serving_version, classifier.default_version);
        const inference = await fetch(`${restarted.url}/v2/models/classifier/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] }),
        });
        assert.equal(inference.status, 200);
        assert.equal(((await inference.json()) as { model_version: string }).model_version, classifier.serving_version);
      } finally {
        restarted.child.kill('SIGKILL');
        await restarted.exited;
      }
    }
    assert.ok(answeredSwaps > 0, 'no swap was answered before a kill: the test wrote nothing');
  });
});
