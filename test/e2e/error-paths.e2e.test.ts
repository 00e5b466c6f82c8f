import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel, externalDataClassifierModel } from '../../scripts/build-models.js';
import { fileNameOf } from '../../src/infra/persistence/file-model-state-store.js';
import { bearer, getJson, makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Issue 15, item 11: no error message names a path of the server. What the runtime or the file
 * system says about a model file is written with the file's name in the repository
 * (`<model>/<version>/...`), for uploads (staged in a hidden directory) and repository loads alike.
 */

const TOKEN = 'error-paths-test-token-0123';
const ROW = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };

describe('error messages name no server path', () => {
  let server: TestServer;
  let roots: string[];
  let stateDir: string;
  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-error-paths-state-'));
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'external', onnx: externalDataClassifierModel() },
      { name: 'broken', onnx: new TextEncoder().encode('not an ONNX model') },
    ]);
    roots = [repository, await realpath(repository), stateDir, await realpath(stateDir)];
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, STRICT_READINESS: 'false', STATE_DIR: stateDir });
  });
  after(async () => {
    await server?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const assertNoPath = (text: string) => {
    for (const root of roots) assert.ok(!text.includes(root), `names the repository's path: ${text}`);
    assert.doesNotMatch(text, /\.upload-[0-9a-f]/, `names the staging directory: ${text}`);
  };

  it('an upload refused for its external data names the file as the version it would be', async () => {
    const upload = await fetch(`${server.url}/admin/models/classifier/versions/7`, {
      method: 'PUT',
      headers: { ...bearer(TOKEN), 'content-type': 'application/octet-stream' },
      body: externalDataClassifierModel(),
    });
    const { error } = (await upload.json()) as { error: string };
    assert.equal(upload.status, 400, error);
    assertNoPath(error);
    assert.match(error, /^the uploaded model does not load: .*External data path does not exist: "classifier\/7\/weights\.bin"/);
  });

  it('an upload whose external data leaves its directory names no directory of the server', async () => {
    const upload = await fetch(`${server.url}/admin/models/classifier/versions/8`, {
      method: 'PUT',
      headers: { ...bearer(TOKEN), 'content-type': 'application/octet-stream' },
      body: externalDataClassifierModel('../../secrets.bin'),
    });
    const { error } = (await upload.json()) as { error: string };
    assert.equal(upload.status, 400, error);
    assertNoPath(error);
  });

  it('a state file that cannot be written is named by its name in STATE_DIR, and the change is not made', async () => {
    // The model's state file replaced by a directory: the real store fails to read it back.
    await rm(join(stateDir, fileNameOf('classifier')), { force: true });
    await mkdir(join(stateDir, fileNameOf('classifier')));
    const load = await requestJson('POST', `${server.url}/v2/repository/models/classifier/unload`, { headers: bearer(TOKEN) });
    assert.equal(load.status, 500, JSON.stringify(load.body));
    assertNoPath(load.body.error);
    assert.match(load.body.error, /^the unload of model 'classifier' was not made: .*model state file classifier\.[0-9a-f]{64}\.json \(in STATE_DIR\) cannot be read: EISDIR/);
    assert.equal((await postJson(`${server.url}/v2/models/classifier/infer`, ROW)).status, 200, 'the model serves on');
  });

  it('versions that failed to load at start say why without the repository path: admin list, index, inference, health', async () => {
    const admin = await requestJson('GET', `${server.url}/admin/models`, { headers: bearer(TOKEN) });
    const reasons = admin.body.models.flatMap((m: { versions: { state: string; reason: string }[] }) => m.versions.filter((v) => v.state === 'UNAVAILABLE').map((v) => v.reason));
    assert.equal(reasons.length, 2, JSON.stringify(reasons));
    for (const reason of reasons) assertNoPath(reason);
    assert.ok(reasons.some((reason: string) => reason.includes('external/1/weights.bin')), JSON.stringify(reasons));
    const index = await requestJson('POST', `${server.url}/v2/repository/index`, { headers: bearer(TOKEN), body: {} });
    assertNoPath(JSON.stringify(index.body));
    for (const model of ['broken', 'external']) {
      const answer = await postJson(`${server.url}/v2/models/${model}/infer`, ROW);
      assert.equal(answer.status, 503);
      assertNoPath(answer.body.error);
    }
    assertNoPath(JSON.stringify((await getJson(`${server.url}/health`)).body));
    const load = await requestJson('POST', `${server.url}/v2/repository/models/broken/load`, { headers: bearer(TOKEN) });
    assert.equal(load.status, 400);
    assertNoPath(load.body.error);
  });
});
