import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { bearer, getJson, makeRepository, requestJson, startServerOver } from '../support/test-server.js';

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
    } finally {
      await server.close();
    }
    const restarted = await startServerOver(repository, { STATE_DIR: stateDir, ADMIN_TOKEN: TOKEN });
    try {
      const { status } = await requestJson('POST', `${restarted.url}/v2/models/other/versions/7/infer`, { body: INPUT });
      assert.equal(status, 404, 'version 7 is not served');
      const load = await requestJson('POST', `${restarted.url}/admin/models/other/versions/7/load`, { headers: bearer(TOKEN) });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      const answer = await requestJson('POST', `${restarted.url}/v2/models/other/infer`, { body: INPUT });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.model_version, '7');
    } finally {
      await restarted.close();
    }
  });
});
