import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { bearer, classifierAnswering, getJson, makeRepository, postJson, requestJson, startServerOver, type TestServer } from '../support/test-server.js';

const classify = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };

/** What a restart must bring back of each model: versions READY (with the file they came from), default, override. */
async function servingState(url: string, token: string) {
  const { status, body } = await requestJson('GET', `${url}/admin/models`, { headers: bearer(token) });
  assert.equal(status, 200);
  return body.models.map((m: any) => ({
    name: m.name,
    default_version: m.default_version,
    serving_version: m.serving_version,
    config_override: m.config_override,
    ready: m.versions.filter((v: any) => v.state === 'READY').map((v: any) => ({ version: v.version, sha256: v.sha256, execution_provider: v.execution_provider })),
  }));
}

describe('admin changes across a restart', () => {
  let stateDir: string;
  let repository: string;
  let first: TestServer | undefined;
  let second: TestServer | undefined;
  let token: string;
  let before1: unknown;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-restart-state-'));
    repository = await makeRepository([
      { name: 'swapped', version: 1, onnx: classifierAnswering(0), config: { version_policy: { all: {} } } },
      { name: 'swapped', version: 2, onnx: classifierAnswering(1) },
      { name: 'swapped', version: 3, onnx: classifierAnswering(2) },
      { name: 'older', version: 1, onnx: classifierAnswering(0) },
      { name: 'older', version: 2, onnx: classifierAnswering(1) },
      { name: 'overridden', version: 1, onnx: classifierModel(), config: { max_batch_size: 8 } },
      { name: 'dropped', version: 1, onnx: classifierModel() },
      { name: 'untouched', version: 1, onnx: classifierAnswering(0) },
      { name: 'untouched', version: 2, onnx: classifierAnswering(1) },
    ]);
    first = await startServerOver(repository, { STATE_DIR: stateDir });
    token = (await readFile(join(stateDir, 'admin-token'), 'utf8')).trim();
    const admin = bearer(token);
    const url = first.url;

    // Swap the default to an older version, unload another one.
    const swap = await requestJson('PUT', `${url}/admin/models/swapped/default-version`, { headers: admin, body: { version: '1' } });
    assert.equal(swap.status, 200, JSON.stringify(swap.body));
    const unload = await requestJson('POST', `${url}/admin/models/swapped/versions/2/unload`, { headers: admin });
    assert.equal(unload.status, 200, JSON.stringify(unload.body));
    // With the default policy (latest 1) the swap unloads version 2; a start without saved state would load 2.
    const older = await requestJson('PUT', `${url}/admin/models/older/default-version`, { headers: admin, body: { version: '1' } });
    assert.equal(older.status, 200, JSON.stringify(older.body));
    // Triton's load with a configuration override.
    const config = JSON.stringify({ max_batch_size: 2 });
    const load = await requestJson('POST', `${url}/v2/repository/models/overridden/load`, { headers: admin, body: { parameters: { config } } });
    assert.equal(load.status, 200, JSON.stringify(load.body));
    // Triton's unload of a whole model.
    const dropped = await requestJson('POST', `${url}/v2/repository/models/dropped/unload`, { headers: admin });
    assert.equal(dropped.status, 200, JSON.stringify(dropped.body));

    before1 = await servingState(url, token);
    await first.close();
    first = undefined;
    second = await startServerOver(repository, { STATE_DIR: stateDir });
  });

  after(async () => {
    await first?.close();
    await second?.close();
    await rm(repository, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  });

  it('reuses the generated token, whose file is still readable only by its user', async () => {
    assert.equal((await readFile(join(stateDir, 'admin-token'), 'utf8')).trim(), token);
    assert.equal((await stat(join(stateDir, 'admin-token'))).mode & 0o777, 0o600);
    assert.equal((await requestJson('GET', `${second!.url}/admin/models`, { headers: bearer(token) })).status, 200);
    assert.equal((await requestJson('GET', `${second!.url}/admin/models`, { headers: bearer('another-token-0123456789') })).status, 401);
  });

  it('loads the same versions, pins the same default version and applies the same override', async () => {
    assert.deepEqual(await servingState(second!.url, token), before1);
  });

  it('serves the pinned older version, not the highest one, and not the unloaded one', async () => {
    const answer = await postJson(`${second!.url}/v2/models/swapped/infer`, classify);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.model_version, '1');
    assert.deepEqual(answer.body.outputs.find((o: { name: string }) => o.name === 'label').data, [0]);
    assert.equal((await postJson(`${second!.url}/v2/models/swapped/versions/3/infer`, classify)).status, 200);
    assert.notEqual((await postJson(`${second!.url}/v2/models/swapped/versions/2/infer`, classify)).status, 200);
    assert.deepEqual((await getJson(`${second!.url}/v2/models/swapped`)).body.versions, ['3', '1']);
  });

  it('serves the older version a swap left alone under the latest-1 policy, not the one the policy would pick', async () => {
    const answer = await postJson(`${second!.url}/v2/models/older/infer`, classify);
    assert.equal(answer.body.model_version, '1');
    assert.deepEqual((await getJson(`${second!.url}/v2/models/older`)).body.versions, ['1']);
  });

  it('serves with the overriding configuration', async () => {
    const config = await getJson(`${second!.url}/v2/models/overridden/config`);
    assert.equal(config.status, 200);
    assert.equal(config.body.max_batch_size, 2);
    const tooLarge = { inputs: [{ name: 'input', shape: [3, 4], datatype: 'FP32', data: new Array(12).fill(1) }] };
    assert.equal((await postJson(`${second!.url}/v2/models/overridden/infer`, tooLarge)).status, 400);
  });

  it('keeps the model unloaded through Triton unloaded', async () => {
    assert.equal((await getJson(`${second!.url}/v2/models/dropped/ready`)).status, 503);
    assert.equal((await postJson(`${second!.url}/v2/models/dropped/infer`, classify)).status, 503);
  });

  it('loads a model without saved state as its policy says', async () => {
    assert.equal((await postJson(`${second!.url}/v2/models/untouched/infer`, classify)).body.model_version, '2');
  });
});
