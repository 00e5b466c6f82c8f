import assert from 'node:assert/strict';
import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { RolloutProgress } from '../../src/modules/rollout/progress-rollouts/rollout-progress.js';
import { FaultyStateStore } from '../support/faulty-state-store.js';
import { bearer, classifierAnswering, makeRepository, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Issue 15, item 7: an admin change whose state cannot be saved (a full disk) answers an error and
 * has not taken effect: not in routing, not in what GET /admin/models says, not on disk. Each
 * model below takes one kind of change; the store is made to fail just before it.
 */

const TOKEN = 'state-not-saved-test-token-0123';
const admin = bearer(TOKEN);
const ONLY_1 = { version_policy: { specific: { versions: [1] } } };
const ALL = { version_policy: { all: {} } };
const ROW = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };

/** The answer of a change refused for its save: 500, saying it was not made and why, naming no path. */
function assertNotMade(answer: { status: number; body: any }, change: RegExp): void {
  assert.equal(answer.status, 500, JSON.stringify(answer.body));
  assert.match(answer.body.error, change);
  assert.match(answer.body.error, /was not made: the state of model '[a-z-]+' could not be saved: .*ENOSPC: no space left on device/);
  assert.doesNotMatch(answer.body.error, /\/(tmp|var|work|home)\//, 'no server path');
}

describe('an admin change whose state cannot be saved has not taken effect', () => {
  let repository: string;
  let stateDir: string;
  let store: FaultyStateStore;
  let server: TestServer;
  let url: string;

  before(async () => {
    repository = await makeRepository([
      { name: 'swap', version: 1, onnx: classifierAnswering(0), config: ONLY_1 },
      { name: 'swap', version: 2, onnx: classifierAnswering(1) },
      { name: 'load', version: 1, onnx: classifierAnswering(0), config: ONLY_1 },
      { name: 'load', version: 2, onnx: classifierAnswering(1) },
      { name: 'unload', version: 1, onnx: classifierAnswering(0), config: ALL },
      { name: 'unload', version: 2, onnx: classifierAnswering(1) },
      { name: 'override', version: 1, onnx: classifierModel(), config: { max_batch_size: 8 } },
      { name: 'dropped', version: 1, onnx: classifierModel() },
      { name: 'upload', version: 1, onnx: classifierModel() },
      { name: 'canary', version: 1, onnx: classifierAnswering(0), config: ALL },
      { name: 'canary', version: 2, onnx: classifierAnswering(1) },
    ]);
    stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-faulty-state-'));
    store = new FaultyStateStore(stateDir);
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, ROLLOUT_EVALUATION_INTERVAL_MS: '3600000' }, { modelStateStore: store, rolloutRepository: store.rollouts });
    url = server.url;
  });
  after(async () => {
    await server?.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    store.failing = false;
    store.refused = 0;
  });

  const infer = (model: string, version?: number) => requestJson('POST', `${url}/v2/models/${model}${version ? `/versions/${version}` : ''}/infer`, { body: ROW });
  const described = async (model: string) => {
    const { status, body } = await requestJson('GET', `${url}/admin/models`, { headers: admin });
    assert.equal(status, 200);
    return body.models.find((m: { name: string }) => m.name === model);
  };
  const stateOf = async (model: string, version: number) => (await described(model)).versions.find((v: { version: string }) => v.version === String(version))?.state;

  it('a swap: routing stays on the version that served, and the version it loaded is unloaded again', async () => {
    store.failing = true;
    const swap = await requestJson('PUT', `${url}/admin/models/swap/default-version`, { headers: admin, body: { version: '2' } });
    assertNotMade(swap, /^the swap of model 'swap' to version 2 was not made/);
    assert.match(swap.body.error, /version 1 serves on, and version 2 was unloaded again$/);
    assert.equal((await infer('swap')).body.model_version, '1');
    const model = await described('swap');
    assert.equal(model.default_version, null);
    assert.equal(model.serving_version, '1');
    assert.equal(await stateOf('swap', 2), 'UNAVAILABLE');
    assert.ok(store.refused > 0);

    store.failing = false;
    const retried = await requestJson('PUT', `${url}/admin/models/swap/default-version`, { headers: admin, body: { version: '2' } });
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.equal((await infer('swap')).body.model_version, '2');
  });

  it('a version load: the version it loaded is unloaded again, and does not serve', async () => {
    store.failing = true;
    assertNotMade(await requestJson('POST', `${url}/admin/models/load/versions/2/load`, { headers: admin }), /^the load of version 2 of model 'load' was not made/);
    assert.equal((await infer('load')).body.model_version, '1');
    assert.equal(await stateOf('load', 2), 'UNAVAILABLE');
    assert.equal((await infer('load', 2)).status, 503);
  });

  it('a version unload: the version serves on', async () => {
    store.failing = true;
    assertNotMade(await requestJson('POST', `${url}/admin/models/unload/versions/2/unload`, { headers: admin, body: { force: true } }), /^the unload of version 2 of model 'unload' was not made/);
    assert.equal(await stateOf('unload', 2), 'READY');
    assert.equal((await infer('unload', 2)).status, 200);
    assert.equal((await infer('unload')).body.model_version, '2');
  });

  it("Triton's load with a configuration override: the configuration is unchanged", async () => {
    store.failing = true;
    const config = JSON.stringify({ max_batch_size: 2 });
    assertNotMade(await requestJson('POST', `${url}/v2/repository/models/override/load`, { headers: admin, body: { parameters: { config } } }), /^failed to load 'override', the load of model 'override' was not made/);
    assert.equal((await requestJson('GET', `${url}/v2/models/override/config`)).body.max_batch_size, 8);
    assert.equal((await described('override')).config_override, false);
  });

  it("Triton's unload: the model serves on", async () => {
    store.failing = true;
    assertNotMade(await requestJson('POST', `${url}/v2/repository/models/dropped/unload`, { headers: admin }), /^the unload of model 'dropped' was not made/);
    assert.equal((await infer('dropped')).status, 200);
    assert.equal((await requestJson('GET', `${url}/v2/models/dropped/ready`)).status, 200);
  });

  it('an upload: nothing is written to the repository, nothing is listed', async () => {
    store.failing = true;
    const upload = await fetch(`${url}/admin/models/upload/versions/3`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/octet-stream' }, body: classifierModel() });
    assertNotMade({ status: upload.status, body: await upload.json() }, /^the upload of version 3 of model 'upload' was not made/);
    await assert.rejects(access(join(repository, 'upload', '3')), { code: 'ENOENT' });
    assert.deepEqual(await readdir(join(repository, 'upload')), ['1'], 'no staged upload left either');
    assert.equal(await stateOf('upload', 3), undefined);
  });

  describe('rollouts', () => {
    const rollout = async () => (await requestJson('GET', `${url}/admin/models/canary/rollout`, { headers: admin })).body;
    const start = async (document: object) => {
      const started = await requestJson('PUT', `${url}/admin/models/canary/rollout`, { headers: admin, body: document });
      assert.equal(started.status, 200, JSON.stringify(started.body));
    };

    it('a rollout that cannot be saved is not started', async () => {
      store.failing = true;
      const started = await requestJson('PUT', `${url}/admin/models/canary/rollout`, { headers: admin, body: { stable: 1, canary: { version: 2, weight: 50 } } });
      assertNotMade(started, /^the rollout of model 'canary' was not made/);
      assert.equal((await requestJson('GET', `${url}/admin/models/canary/rollout`, { headers: admin })).status, 404);
    });

    it('a promotion: the rollout goes on, the default version is unchanged', async () => {
      await start({ stable: 1, canary: { version: 2, weight: 50 } });
      store.failing = true;
      assertNotMade(await requestJson('POST', `${url}/admin/models/canary/rollout/promote`, { headers: admin }), /^the rollout of model 'canary' \(promoted\) was not made/);
      const after = await rollout();
      assert.equal(after.phase, 'ACTIVE');
      assert.equal(after.stable, '1');
      assert.deepEqual(after.canary, { version: '2', weight: 50 });
      assert.equal((await described('canary')).default_version, null);
      assert.equal(await stateOf('canary', 1), 'READY');
    });

    it('an abort: the rollout goes on', async () => {
      await start({ stable: 1, canary: { version: 2, weight: 50 } });
      store.failing = true;
      assertNotMade(await requestJson('POST', `${url}/admin/models/canary/rollout/abort`, { headers: admin }), /^the rollout of model 'canary' \(aborted\) was not made/);
      const after = await rollout();
      assert.equal(after.phase, 'ACTIVE');
      assert.equal(after.canary.weight, 50);
    });

    it('a step of a progressive plan: the plan stays at its step', async () => {
      await start({ stable: 1, canary: { version: 2 }, plan: { steps: [10, 50], min_requests: 1, min_dwell_seconds: 0, slo: { max_error_rate: 1 } } });
      for (let i = 0; i < 200 && (await rollout()).figures.find((f: { version: number }) => f.version === 2)?.requests === 0; i++) {
        assert.equal((await infer('canary')).status, 200);
      }
      store.failing = true;
      await server.server.app.get(RolloutProgress).tick(new Date(Date.now() + 60_000));
      const after = await rollout();
      assert.equal(after.phase, 'ACTIVE');
      assert.equal(after.step, 0);
      assert.equal(after.canary.weight, 10);
      assert.ok(store.refused > 0, 'the step was decided, and its save refused');
    });
  });
});
