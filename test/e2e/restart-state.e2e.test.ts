import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { FileModelStateStore, fileNameOf } from '../../src/infra/persistence/file-model-state-store.js';
import { spawnServer } from '../support/server-process.js';
import { bearer, classifierAnswering, getJson, makeRepository, postJson, requestJson, startServerOver } from '../support/test-server.js';

/**
 * Issue 15, item 6: a saved state the server cannot apply at a restart (a state file changed from
 * outside, a version it names deleted from the repository) is logged at error level, naming the
 * model, the state and why; the model loads as its version policy says; readiness says what serves.
 */

const TOKEN = 'restart-state-test-token-0123';
const ROW = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };
const PINO_ERROR = 50;

describe('a saved state the server cannot apply at a restart', () => {
  it('is logged at error level, set aside when unreadable, and the model serves as its version policy says', async () => {
    const repository = await makeRepository([
      { name: 'classifier', version: 1, onnx: classifierAnswering(0) },
      { name: 'corrupt', onnx: classifierModel() },
      { name: 'foreign', onnx: classifierModel() },
      { name: 'polluted', onnx: classifierModel() },
    ]);
    const stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-restart-state-'));
    // What a swap to version 2 under the default policy (latest 1) saved; then an operator deleted classifier/2/.
    await new FileModelStateStore(stateDir).save({ name: 'classifier', loadedVersions: [2], unloadedVersions: [], defaultVersion: 2 }, 0);
    await writeFile(join(stateDir, fileNameOf('corrupt')), '{"revision":1,"state":{"na');
    await writeFile(join(stateDir, fileNameOf('foreign')), JSON.stringify({ revision: 1, state: { name: 'classifier', loadedVersions: [], unloadedVersions: [1] } }));
    await writeFile(join(stateDir, fileNameOf('polluted')), '{"__proto__":{"revision":1,"state":{"name":"polluted","loadedVersions":[],"unloadedVersions":[1]}}}');

    const server = await spawnServer({ MODEL_REPOSITORY: repository, STATE_DIR: stateDir, LOG_LEVEL: 'info', ADMIN_TOKEN: TOKEN, SHUTDOWN_DRAIN_DELAY_MS: '0' });
    try {
      assert.ok(await server.untilReady(), server.stderr());
      for (const model of ['classifier', 'corrupt', 'foreign', 'polluted']) {
        const answer = await postJson(`${server.url}/v2/models/${model}/infer`, ROW);
        assert.equal(answer.status, 200, `${model}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.model_version, '1');
      }
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 200);
      const classifier = (await requestJson('GET', `${server.url}/admin/models`, { headers: bearer(TOKEN) })).body.models.find((m: any) => m.name === 'classifier');
      assert.equal(classifier.default_version, null, 'the saved default version is not applied');
      // The state is saved again at the next change, as the server now is.
      const swap = await requestJson('PUT', `${server.url}/admin/models/corrupt/default-version`, { headers: bearer(TOKEN), body: { version: '1' } });
      assert.equal(swap.status, 200, JSON.stringify(swap.body));
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
      await server.stop();
    }
    try {
      const errors = server
        .stdout()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line))
        .filter((line) => line.level === PINO_ERROR && line.context === 'LoadModelRepositoryHandler')
        .map((line) => line.msg as string);
      const about = (model: string) => errors.filter((msg) => msg.startsWith(`model '${model}': its saved state`));
      assert.deepEqual(about('classifier'), [
        "model 'classifier': its saved state (loaded versions [2], default version 2) cannot be applied: version 2 is no longer in the repository (versions: 1); the model loads as its version policy says",
      ]);
      assert.match(about('corrupt')[0] ?? '', /^model 'corrupt': its saved state cannot be applied: model state file corrupt\.[0-9a-f]{64}\.json \(in STATE_DIR\) is not valid JSON .*; it was set aside as state file corrupt\.[0-9a-f]{64}\.json\.unreadable-\d+ in STATE_DIR; the model loads as its version policy says$/);
      assert.match(about('foreign')[0] ?? '', /holds the state of model 'classifier'.*set aside/);
      assert.match(about('polluted')[0] ?? '', /is not a stored model state.*set aside/);
      assert.equal(errors.filter((msg) => msg.includes(stateDir)).length, 0, 'STATE_DIR is named, not its path');

      const files = await readdir(stateDir);
      for (const model of ['corrupt', 'foreign', 'polluted']) assert.ok(files.some((file) => file.startsWith(`${fileNameOf(model)}.unreadable-`)), `${model}: set aside`);
      assert.equal(await readFile(join(stateDir, files.find((file) => file.startsWith(`${fileNameOf('corrupt')}.unreadable-`))!), 'utf8'), '{"revision":1,"state":{"na');
      const saved = JSON.parse(await readFile(join(stateDir, fileNameOf('corrupt')), 'utf8'));
      assert.deepEqual(saved.state.loadedVersions, [1], 'a fresh state was saved by the swap');
    } finally {
      await rm(repository, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  it('holds strict readiness back while a model that should serve has no READY version', async () => {
    const repository = await makeRepository([
      { name: 'fine', onnx: classifierModel() },
      // Its saved state names a deleted version; the one left does not load.
      { name: 'fallback-broken', version: 1, onnx: new TextEncoder().encode('not an ONNX model') },
      // Its policy selects none of the versions present.
      { name: 'unselected', version: 1, onnx: classifierModel(), config: { version_policy: { specific: { versions: [3] } } } },
      { name: 'unselected', version: 2, onnx: classifierModel() },
    ]);
    const stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-restart-state-'));
    await new FileModelStateStore(stateDir).save({ name: 'fallback-broken', loadedVersions: [2], unloadedVersions: [1], defaultVersion: 2 }, 0);
    const server = await startServerOver(repository, { STATE_DIR: stateDir, ADMIN_TOKEN: TOKEN });
    try {
      const ready = await getJson(`${server.url}/v2/health/ready`);
      assert.equal(ready.status, 503);
      assert.match(ready.body.error, /'fallback-broken' version 1 is UNAVAILABLE/);
      assert.match(ready.body.error, /'unselected': its version policy \(specific 3\) selects none of the versions in the repository \(1, 2\)/);
      const health = await getJson(`${server.url}/health`);
      assert.equal(health.status, 503);
      assert.equal(health.body.details.models.status, 'down');
      // Both versions of 'unselected' are listed, not loaded.
      const listed = (await requestJson('GET', `${server.url}/admin/models`, { headers: bearer(TOKEN) })).body.models.find((m: any) => m.name === 'unselected');
      assert.deepEqual(listed.versions.map((v: any) => [v.version, v.state, v.reason]), [['2', 'UNAVAILABLE', 'unloaded'], ['1', 'UNAVAILABLE', 'unloaded']]);
      // An operator loads one: the model serves, and the server is ready.
      const load = await requestJson('POST', `${server.url}/admin/models/unselected/versions/2/load`, { headers: bearer(TOKEN) });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      const unload = await requestJson('POST', `${server.url}/v2/repository/models/fallback-broken/unload`, { headers: bearer(TOKEN) });
      assert.equal(unload.status, 200, JSON.stringify(unload.body));
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 200);
    } finally {
      await server.close();
      await rm(repository, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
