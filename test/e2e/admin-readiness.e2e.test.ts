import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { bearer, classifierAnswering, getJson, makeRepository, requestJson, startServerOver, type TestServer } from '../support/test-server.js';

const TOKEN = 'readiness-test-token-0123';
const INPUT = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] };

describe('what operators do is not a failure of the server', () => {
  let repository: string;
  let stateDir: string;
  before(async () => {
    const onnx = classifierModel();
    repository = await makeRepository([
      { name: 'classifier', version: 1, onnx },
      { name: 'classifier', version: 2, onnx },
      { name: 'other', onnx },
    ]);
    stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-readiness-state-'));
  });
  after(async () => {
    await rm(repository, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  });

  it('stays ready (strict readiness) after a swap retires a version and a Triton unload empties a model, also after a restart', async () => {
    const server = await startServerOver(repository, { STATE_DIR: stateDir, ADMIN_TOKEN: TOKEN });
    try {
      const swap = await requestJson('PUT', `${server.url}/admin/models/classifier/default-version`, { body: { version: '1' }, headers: bearer(TOKEN) });
      assert.equal(swap.status, 200, JSON.stringify(swap.body));
      const unload = await requestJson('POST', `${server.url}/v2/repository/models/other/unload`, { headers: bearer(TOKEN) });
      assert.equal(unload.status, 200, JSON.stringify(unload.body));
      const ready = await getJson(`${server.url}/v2/health/ready`);
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
    } finally {
      await server.close();
    }
    const restarted = await startServerOver(repository, { STATE_DIR: stateDir, ADMIN_TOKEN: TOKEN });
    try {
      const ready = await getJson(`${restarted.url}/v2/health/ready`);
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
    } finally {
      await restarted.close();
    }
  });

  it('does not serve an uploaded version before an operator loads it, not even after a restart', async () => {
    const server = await startServerOver(repository, { STATE_DIR: stateDir, ADMIN_TOKEN: TOKEN });
    try {
      const bytes = await readFile(join(repository, 'other', '1', 'model.onnx'));
      const upload = await fetch(`${server.url}/admin/models/other/versions/7`, {
        method: 'PUT',
        headers: { ...bearer(TOKEN), 'content-type': 'application/octet-stream' },
        body: bytes,
      });
      assert.equal(upload.status, 201, await upload.text());
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 200, 'an uploaded version waiting to be loaded keeps the server ready');
      const listed = await requestJson('GET', `${server.url}/admin/models`, { headers: bearer(TOKEN) });
      const seven = listed.body.models.find((m: { name: string }) => m.name === 'other').versions.find((v: { version: string }) => v.version === '7');
      assert.deepEqual([seven.state, seven.reason], ['UNAVAILABLE', 'unloaded']);
    } finally {
      await server.close();
    }
    const restarted = await startServerOver(repository, { STATE_DIR: stateDir, ADMIN_TOKEN: TOKEN });
    try {
      const { status } = await requestJson('POST', `${restarted.url}/v2/models/other/versions/7/infer`, { body: INPUT });
      assert.equal(status, 404, 'version 7 is not served');
      // Still listed, as a version not loaded (issue 15, item 13), as it was before the restart.
      const listed = await requestJson('GET', `${restarted.url}/admin/models`, { headers: bearer(TOKEN) });
      const other = listed.body.models.find((m: { name: string }) => m.name === 'other');
      assert.deepEqual(
        other.versions.map((v: { version: string; state: string; reason: string }) => [v.version, v.state, v.reason]),
        [
          ['7', 'UNAVAILABLE', 'unloaded'],
          ['1', 'UNAVAILABLE', 'unloaded'],
        ],
      );
      const load = await requestJson('POST', `${restarted.url}/admin/models/other/versions/7/load`, { headers: bearer(TOKEN) });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      const answer = await requestJson('POST', `${restarted.url}/v2/models/other/infer`, { body: INPUT });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.model_version, '7');
    } finally {
      await restarted.close();
    }
  });

  it('a version that failed to load, then unloaded, no longer holds readiness back; the index shows it UNAVAILABLE, "unloaded"', async () => {
    const broken = new TextEncoder().encode('not an ONNX model');
    const own = await makeRepository([
      { name: 'growing', version: 1, onnx: classifierModel() },
      { name: 'never_loads', onnx: broken },
    ]);
    const ownState = await mkdtemp(join(tmpdir(), 'onnx-serving-readiness-state-'));
    let server: TestServer | undefined;
    const indexOf = async (name: string) => {
      const { body } = await requestJson('POST', `${server!.url}/v2/repository/index`, { headers: bearer(TOKEN), body: {} });
      return body.filter((entry: { name: string }) => entry.name === name).map((entry: { version: string; state: string; reason: string }) => [entry.version, entry.state, entry.reason]);
    };
    try {
      server = await startServerOver(own, { STATE_DIR: ownState, ADMIN_TOKEN: TOKEN, STRICT_READINESS: 'true' });
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 503, 'never_loads failed at start');
      // Triton's unload of the model whose only version failed.
      const unloadModel = await requestJson('POST', `${server.url}/v2/repository/models/never_loads/unload`, { headers: bearer(TOKEN) });
      assert.equal(unloadModel.status, 200, JSON.stringify(unloadModel.body));
      assert.deepEqual(await indexOf('never_loads'), [['1', 'UNAVAILABLE', 'unloaded']]);
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 200);

      // A version whose load fails, then unloaded by an operator.
      await mkdir(join(own, 'growing', '2'));
      await writeFile(join(own, 'growing', '2', 'model.onnx'), broken);
      const load = await requestJson('POST', `${server.url}/admin/models/growing/versions/2/load`, { headers: bearer(TOKEN) });
      assert.equal(load.status, 400, JSON.stringify(load.body));
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 503, 'the failed version holds readiness back');
      const unload = await requestJson('POST', `${server.url}/admin/models/growing/versions/2/unload`, { headers: bearer(TOKEN) });
      assert.equal(unload.status, 200, JSON.stringify(unload.body));
      assert.deepEqual(await indexOf('growing'), [['2', 'UNAVAILABLE', 'unloaded'], ['1', 'READY', '']]);
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 200);
      const again = await requestJson('POST', `${server.url}/admin/models/growing/versions/2/unload`, { headers: bearer(TOKEN) });
      assert.equal(again.status, 409, 'unloaded already');
      await server.close();

      server = await startServerOver(own, { STATE_DIR: ownState, ADMIN_TOKEN: TOKEN, STRICT_READINESS: 'true' });
      assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 200, 'after a restart too');
    } finally {
      await server?.close();
      await rm(own, { recursive: true, force: true });
      await rm(ownState, { recursive: true, force: true });
    }
  });

  it('a version loaded explicitly stays loaded through swaps, also after a restart, until it is unloaded', async () => {
    // Default policy latest(1): at start only version 3 loads.
    const own = await makeRepository([1, 2, 3].map((version) => ({ name: 'swapped', version, onnx: classifierAnswering((version - 1) as 0 | 1 | 2) })));
    const ownState = await mkdtemp(join(tmpdir(), 'onnx-serving-readiness-state-'));
    let server: TestServer | undefined;
    const admin = (method: string, path: string, body?: unknown) => requestJson(method, `${server!.url}${path}`, { headers: bearer(TOKEN), body });
    const states = async () => {
      const { body } = await admin('GET', '/admin/models');
      const model = body.models.find((m: { name: string }) => m.name === 'swapped');
      return Object.fromEntries(model.versions.map((v: { version: string; state: string }) => [v.version, v.state]));
    };
    try {
      server = await startServerOver(own, { STATE_DIR: ownState, ADMIN_TOKEN: TOKEN });
      assert.equal((await admin('POST', '/admin/models/swapped/versions/1/load')).status, 200);
      const swap = await admin('PUT', '/admin/models/swapped/default-version', { version: '2' });
      assert.equal(swap.status, 200, JSON.stringify(swap.body));
      // The policy keeps only the new default; version 3 goes, version 1 (loaded explicitly) stays.
      assert.deepEqual(await states(), { '1': 'READY', '2': 'READY', '3': 'UNAVAILABLE' });
      assert.equal((await requestJson('POST', `${server.url}/v2/models/swapped/versions/1/infer`, { body: INPUT })).status, 200);
      await server.close();

      server = await startServerOver(own, { STATE_DIR: ownState, ADMIN_TOKEN: TOKEN });
      // A restart brings back what was loaded; the version not loaded is listed as such.
      assert.deepEqual(await states(), { '1': 'READY', '2': 'READY', '3': 'UNAVAILABLE' });
      assert.equal((await admin('PUT', '/admin/models/swapped/default-version', { version: '3' })).status, 200);
      assert.deepEqual(await states(), { '1': 'READY', '2': 'UNAVAILABLE', '3': 'READY' }, 'after the restart the swap still keeps version 1');
      // Triton's load of the model keeps it too.
      assert.equal((await admin('POST', '/v2/repository/models/swapped/load', {})).status, 200);
      assert.deepEqual(await states(), { '1': 'READY', '2': 'UNAVAILABLE', '3': 'READY' });

      // Unloaded explicitly, it is a version like any other again: the next swap retires it.
      assert.equal((await admin('POST', '/admin/models/swapped/versions/1/unload')).status, 200);
      assert.equal((await admin('POST', '/admin/models/swapped/versions/2/load')).status, 200);
      assert.equal((await admin('POST', '/admin/models/swapped/versions/2/unload')).status, 200);
      assert.deepEqual(await states(), { '1': 'UNAVAILABLE', '2': 'UNAVAILABLE', '3': 'READY' });
    } finally {
      await server?.close();
      await rm(own, { recursive: true, force: true });
      await rm(ownState, { recursive: true, force: true });
    }
  });
});
