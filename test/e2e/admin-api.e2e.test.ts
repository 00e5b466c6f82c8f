import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { bearer, classifierAnswering, getJson, makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

const TOKEN = 'admin-api-test-token-0123456789';
const admin = bearer(TOKEN);
const classify = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };
const corrupt = new TextEncoder().encode('this is not an ONNX model');
/** The longest name the name rule allows: 128 characters. */
const LONGEST_NAME = `long-${'n'.repeat(123)}`;

/** The model's entry in GET /admin/models. */
async function adminModel(url: string, name: string): Promise<any> {
  const { status, body } = await requestJson('GET', `${url}/admin/models`, { headers: admin });
  assert.equal(status, 200);
  const model = body.models.find((m: { name: string }) => m.name === name);
  assert.ok(model, `GET /admin/models lists no model '${name}'`);
  return model;
}

/** version -> state of the model's versions in GET /admin/models. */
async function statesOf(url: string, name: string): Promise<Record<string, string>> {
  const model = await adminModel(url, name);
  return Object.fromEntries(model.versions.map((v: { version: string; state: string }) => [v.version, v.state]));
}

async function servedVersion(url: string, name: string): Promise<string> {
  const { status, body } = await postJson(`${url}/v2/models/${name}/infer`, classify);
  assert.equal(status, 200, JSON.stringify(body));
  return body.model_version;
}

async function writeVersion(repository: string, name: string, version: number, bytes: Uint8Array): Promise<void> {
  await mkdir(join(repository, name, String(version)), { recursive: true });
  await writeFile(join(repository, name, String(version), 'model.onnx'), bytes);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Every entry under `root` (files by sha256 and mode, directories, links by target): equal snapshots mean nothing changed. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const entries: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const key = relative(root, path);
      if (entry.isDirectory()) {
        entries[key] = 'directory';
        await walk(path);
      } else if (entry.isSymbolicLink()) {
        entries[key] = `link to ${await readlink(path)}`;
      } else {
        const mode = ((await stat(path)).mode & 0o777).toString(8);
        entries[key] = `file ${mode} ${sha256(await readFile(path))}`;
      }
    }
  };
  await walk(root);
  return entries;
}

/**
 * A request whose path is sent exactly as written (fetch would normalize dot segments and
 * re-encode characters), as a hostile client would send it.
 */
function rawRequest(url: string, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path, headers: { ...admin, ...(body !== undefined && { 'content-type': 'application/json' }) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('admin API', () => {
  let sandbox: string;
  let repository: string;
  let server: TestServer;

  before(async () => {
    // The repository and the state directory inside one sandbox: a name that escaped the repository
    // ('..') would land in the sandbox, where the snapshots of the hostile-name test would see it.
    sandbox = await mkdtemp(join(tmpdir(), 'onnx-serving-admin-'));
    const made = await makeRepository([
      { name: 'listed', version: 1, onnx: classifierAnswering(0) },
      { name: 'listed', version: 2, onnx: classifierAnswering(1) },
      { name: 'broken', onnx: corrupt },
      { name: 'grow', version: 1, onnx: classifierAnswering(0) },
      { name: 'unloading', version: 1, onnx: classifierAnswering(0), config: { version_policy: { all: {} } } },
      { name: 'unloading', version: 2, onnx: classifierAnswering(1) },
      { name: 'single', onnx: classifierModel() },
      { name: 'swap', version: 1, onnx: classifierAnswering(0) },
      { name: 'swap', version: 2, onnx: classifierAnswering(1) },
      { name: 'triton', version: 1, onnx: classifierModel() },
      { name: 'triton', version: 2, onnx: classifierModel(), config: { max_batch_size: 8 } },
      { name: 'guarded', version: 1, onnx: classifierAnswering(0), config: { version_policy: { all: {} } } },
      { name: 'guarded', version: 2, onnx: classifierAnswering(1) },
      { name: 'reconfigured', onnx: classifierModel(), config: { max_batch_size: 8 } },
      { name: LONGEST_NAME, onnx: classifierModel() },
    ]);
    repository = join(sandbox, 'repository');
    await rename(made, repository);
    // A model directory that is a symlink to one outside the repository.
    await writeVersion(join(sandbox, 'outside'), 'linked', 1, classifierModel());
    await symlink(join(sandbox, 'outside', 'linked'), join(repository, 'linked'));
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, STATE_DIR: join(sandbox, 'state'), STRICT_READINESS: 'false' });
  });

  after(async () => {
    await server?.close();
    await rm(sandbox, { recursive: true, force: true });
  });

  describe('authentication', () => {
    const calls: [string, string, unknown?][] = [
      ['GET', '/admin/models'],
      ['POST', '/admin/models/guarded/versions/1/unload'],
      ['PUT', '/admin/models/guarded/default-version', { version: '1' }],
      ['POST', '/v2/repository/index', {}],
      ['POST', '/v2/repository/models/guarded/unload'],
    ];

    for (const [method, path, body] of calls) {
      it(`refuses ${method} ${path} with 401 without a token, with a wrong one, or with another scheme`, async () => {
        for (const headers of [{}, bearer('not-the-admin-token-at-all'), bearer(`${TOKEN}x`), { authorization: TOKEN }, { authorization: `Basic ${TOKEN}` }, { authorization: 'Bearer' }]) {
          const { status, body: answer } = await requestJson(method, `${server.url}${path}`, { headers, body });
          assert.equal(status, 401, `${JSON.stringify(headers)}: ${JSON.stringify(answer)}`);
          assert.equal(typeof answer.error, 'string');
          assert.deepEqual(Object.keys(answer), ['error']);
        }
      });
    }

    it('changes nothing on a refused call', async () => {
      assert.deepEqual(await statesOf(server.url, 'guarded'), { '2': 'READY', '1': 'READY' });
      assert.equal((await adminModel(server.url, 'guarded')).default_version, null);
      assert.equal(await servedVersion(server.url, 'guarded'), '2');
    });

    it('accepts the token of ADMIN_TOKEN', async () => {
      assert.equal((await requestJson('GET', `${server.url}/admin/models`, { headers: admin })).status, 200);
      assert.equal((await requestJson('GET', `${server.url}/admin/models`, { headers: { authorization: `bearer   ${TOKEN}` } })).status, 200);
      assert.equal((await requestJson('POST', `${server.url}/v2/repository/index`, { headers: admin, body: {} })).status, 200);
    });

    it('does not guard inference and metadata', async () => {
      assert.equal((await postJson(`${server.url}/v2/models/guarded/infer`, classify)).status, 200);
      assert.equal((await getJson(`${server.url}/v2/models/guarded/config`)).status, 200);
    });
  });

  describe('GET /admin/models', () => {
    it('lists every model with its versions, their states and the sha256 of the files they were loaded from', async () => {
      const { status, body } = await requestJson('GET', `${server.url}/admin/models`, { headers: admin });
      assert.equal(status, 200);
      assert.deepEqual(
        body.models.map((m: { name: string }) => m.name),
        ['broken', 'grow', 'guarded', 'listed', LONGEST_NAME, 'reconfigured', 'single', 'swap', 'triton', 'unloading'],
      );
      const listed = body.models.find((m: { name: string }) => m.name === 'listed');
      assert.equal(listed.default_version, null);
      assert.equal(listed.serving_version, '2');
      assert.equal(listed.config_override, false);
      assert.ok(listed.version_policy, 'the version policy is shown');
      assert.equal(listed.versions.length, 2, 'every version directory is listed');
      const [v2, v1] = listed.versions;
      assert.deepEqual([v1.version, v1.state, v1.reason, v1.sha256], ['1', 'UNAVAILABLE', 'unloaded', null], 'the default policy (latest 1) loads only version 2');
      assert.equal(v2.version, '2');
      assert.equal(v2.state, 'READY');
      assert.equal(v2.reason, '');
      assert.equal(v2.sha256, sha256(await readFile(join(repository, 'listed', '2', 'model.onnx'))));
      assert.equal(v2.execution_provider, 'cpu');
      assert.ok(!Number.isNaN(Date.parse(v2.loaded_at)), `loaded_at ${v2.loaded_at} is a date`);

      const unloading = body.models.find((m: { name: string }) => m.name === 'unloading');
      assert.deepEqual(
        unloading.versions.map((v: { version: string; sha256: string }) => [v.version, v.sha256]),
        [
          ['2', sha256(classifierAnswering(1))],
          ['1', sha256(classifierAnswering(0))],
        ],
      );
    });

    it('shows a version that failed to load as UNAVAILABLE with the reason', async () => {
      const broken = await adminModel(server.url, 'broken');
      assert.equal(broken.serving_version, null);
      assert.equal(broken.versions.length, 1);
      assert.equal(broken.versions[0].state, 'UNAVAILABLE');
      assert.match(broken.versions[0].reason, /protobuf parsing failed|load model/i);
      assert.equal(broken.versions[0].loaded_at, null);
    });
  });

  describe('POST /admin/models/{m}/versions/{v}/load', () => {
    it('loads a version added to the repository after start; the highest READY one then serves', async () => {
      assert.equal(await servedVersion(server.url, 'grow'), '1');
      await writeVersion(repository, 'grow', 2, classifierAnswering(1));
      const { status, body } = await requestJson('POST', `${server.url}/admin/models/grow/versions/2/load`, { headers: admin });
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.name, 'grow');
      assert.deepEqual(
        body.versions.map((v: { version: string; state: string }) => [v.version, v.state]),
        [
          ['2', 'READY'],
          ['1', 'READY'],
        ],
      );
      assert.equal(body.versions[0].sha256, sha256(classifierAnswering(1)));
      assert.equal(await servedVersion(server.url, 'grow'), '2');
      const pinned = await postJson(`${server.url}/v2/models/grow/versions/2/infer`, classify);
      assert.deepEqual(pinned.body.outputs.find((o: { name: string }) => o.name === 'label').data, [1], 'version 2 computed it');
    });

    it('leaves a READY version as it is when asked to load it again', async () => {
      const before = (await adminModel(server.url, 'grow')).versions.find((v: { version: string }) => v.version === '1');
      const { status } = await requestJson('POST', `${server.url}/admin/models/grow/versions/1/load`, { headers: admin });
      assert.equal(status, 200);
      const again = (await adminModel(server.url, 'grow')).versions.find((v: { version: string }) => v.version === '1');
      assert.deepEqual(again, before);
    });

    it('answers 404 for a version or a model the repository does not have', async () => {
      const version = await requestJson('POST', `${server.url}/admin/models/grow/versions/9/load`, { headers: admin });
      assert.equal(version.status, 404);
      assert.match(version.body.error, /no version 9/);
      const model = await requestJson('POST', `${server.url}/admin/models/nowhere/versions/1/load`, { headers: admin });
      assert.equal(model.status, 404);
      assert.match(model.body.error, /no model 'nowhere'/);
    });

    it('answers 400 when the version fails to load, and the model keeps serving', async () => {
      await writeVersion(repository, 'grow', 3, corrupt);
      const { status, body } = await requestJson('POST', `${server.url}/admin/models/grow/versions/3/load`, { headers: admin });
      assert.equal(status, 400);
      assert.match(body.error, /version 3 failed to load/);
      assert.equal((await statesOf(server.url, 'grow'))['3'], 'UNAVAILABLE');
      assert.equal(await servedVersion(server.url, 'grow'), '2');
    });
  });

  describe('POST /admin/models/{m}/versions/{v}/unload', () => {
    const unload = (version: number, body?: unknown) =>
      requestJson('POST', `${server.url}/admin/models/unloading/versions/${version}/unload`, { headers: admin, body });

    it('unloads the serving version when it is not pinned and another READY one takes over', async () => {
      assert.deepEqual(await statesOf(server.url, 'unloading'), { '2': 'READY', '1': 'READY' });
      const { status, body } = await unload(2);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.serving_version, '1');
      assert.deepEqual(await statesOf(server.url, 'unloading'), { '2': 'UNAVAILABLE', '1': 'READY' });
      assert.equal(await servedVersion(server.url, 'unloading'), '1');
      assert.equal((await postJson(`${server.url}/v2/models/unloading/versions/2/infer`, classify)).status, 503);
    });

    it('refuses with 409 to unload the pinned default version unless forced', async () => {
      assert.equal((await requestJson('POST', `${server.url}/admin/models/unloading/versions/2/load`, { headers: admin })).status, 200);
      const pin = await requestJson('PUT', `${server.url}/admin/models/unloading/default-version`, { headers: admin, body: { version: '1' } });
      assert.equal(pin.status, 200, JSON.stringify(pin.body));
      const refused = await unload(1);
      assert.equal(refused.status, 409);
      assert.match(refused.body.error, /default version/);
      const refusedExplicitly = await unload(1, { force: false });
      assert.equal(refusedExplicitly.status, 409);
      assert.deepEqual(await statesOf(server.url, 'unloading'), { '2': 'READY', '1': 'READY' });
      assert.equal(await servedVersion(server.url, 'unloading'), '1');

      const forced = await unload(1, { force: true });
      assert.equal(forced.status, 200, JSON.stringify(forced.body));
      assert.equal(forced.body.default_version, null);
      assert.equal(forced.body.serving_version, '2');
      assert.equal(await servedVersion(server.url, 'unloading'), '2');
    });

    it('refuses with 409 to unload the only READY version unless forced', async () => {
      const refused = await unload(2);
      assert.equal(refused.status, 409);
      assert.match(refused.body.error, /only READY version/);
      assert.equal(await servedVersion(server.url, 'unloading'), '2');
      const single = await requestJson('POST', `${server.url}/admin/models/single/versions/1/unload`, { headers: admin, body: {} });
      assert.equal(single.status, 409);

      const forced = await unload(2, { force: true });
      assert.equal(forced.status, 200);
      assert.equal(forced.body.serving_version, null);
      const infer = await postJson(`${server.url}/v2/models/unloading/infer`, classify);
      assert.equal(infer.status, 503);
      assert.match(infer.body.error, /no READY version/);
    });

    it('answers 409 for a version that is not READY, 404 for one the model does not have, 400 for a bad body', async () => {
      assert.equal((await unload(2)).status, 409);
      assert.equal((await unload(7)).status, 404);
      assert.equal((await requestJson('POST', `${server.url}/admin/models/nowhere/versions/1/unload`, { headers: admin })).status, 404);
      const badBody = await unload(1, { force: 'yes' });
      assert.equal(badBody.status, 400);
      assert.match(badBody.body.error, /force/);
      assert.equal((await unload(1, { force: true, extra: 1 })).status, 400);
      assert.equal((await unload(1, '{"force": tru')).status, 400);
    });

    it('loads an unloaded version again', async () => {
      assert.equal((await requestJson('POST', `${server.url}/admin/models/unloading/versions/1/load`, { headers: admin })).status, 200);
      assert.equal(await servedVersion(server.url, 'unloading'), '1');
    });
  });

  describe('PUT /admin/models/{m}/default-version', () => {
    const makeDefault = (model: string, body: unknown) => requestJson('PUT', `${server.url}/admin/models/${model}/default-version`, { headers: admin, body });

    it('swaps to an older version, then unloads what the version policy no longer keeps', async () => {
      assert.equal(await servedVersion(server.url, 'swap'), '2');
      const { status, body } = await makeDefault('swap', { version: '1' });
      assert.equal(status, 200, JSON.stringify(body));
      assert.deepEqual(body, { name: 'swap', previous_version: '2', version: '1' });
      assert.equal(await servedVersion(server.url, 'swap'), '1');
      const swap = await adminModel(server.url, 'swap');
      assert.equal(swap.default_version, '1');
      assert.deepEqual(await statesOf(server.url, 'swap'), { '2': 'UNAVAILABLE', '1': 'READY' }, 'latest 1 keeps only the default');
    });

    it('accepts the version as a JSON number', async () => {
      const { status, body } = await makeDefault('swap', { version: 1 });
      assert.equal(status, 200, JSON.stringify(body));
      assert.deepEqual(body, { name: 'swap', previous_version: '1', version: '1' });
    });

    it('answers 404 for an unknown model or version', async () => {
      const model = await makeDefault('nowhere', { version: '1' });
      assert.equal(model.status, 404);
      const version = await makeDefault('swap', { version: '9' });
      assert.equal(version.status, 404);
      assert.match(version.body.error, /no version 9/);
    });

    it('answers 400 for a bad body or a version that is not a positive integer without leading zeros', async () => {
      for (const body of ['{"version": ', '', 'null', '[]', {}, { version: '01' }, { version: '0' }, { version: -1 }, { version: 1.5 }, { version: '1', force: true }, { version: '1e0' }, { version: ' 1' }]) {
        const answer = await makeDefault('swap', body);
        assert.equal(answer.status, 400, `${JSON.stringify(body)} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
        assert.equal(typeof answer.body.error, 'string');
      }
      assert.equal((await adminModel(server.url, 'swap')).default_version, '1');
    });

    it('answers 400 when the version does not load, and the old one keeps serving as the default', async () => {
      await writeVersion(repository, 'swap', 3, corrupt);
      const { status, body } = await makeDefault('swap', { version: '3' });
      assert.equal(status, 400);
      assert.match(body.error, /version 3 failed to load/);
      assert.equal(await servedVersion(server.url, 'swap'), '1');
      const swap = await adminModel(server.url, 'swap');
      assert.equal(swap.default_version, '1');
      assert.equal(swap.serving_version, '1');
      const states = await statesOf(server.url, 'swap');
      assert.equal(states['1'], 'READY');
      assert.equal(states['3'], 'UNAVAILABLE');
      assert.match(swap.versions.find((v: { version: string }) => v.version === '3').reason, /./);
    });

    it('swaps to a version loaded after a failed attempt once its file is fixed', async () => {
      await writeVersion(repository, 'swap', 3, classifierAnswering(2));
      const { status, body } = await makeDefault('swap', { version: '3' });
      assert.equal(status, 200, JSON.stringify(body));
      assert.deepEqual(body, { name: 'swap', previous_version: '1', version: '3' });
      const answer = await postJson(`${server.url}/v2/models/swap/infer`, classify);
      assert.equal(answer.body.model_version, '3');
      assert.deepEqual(answer.body.outputs.find((o: { name: string }) => o.name === 'label').data, [2]);
      assert.equal((await adminModel(server.url, 'swap')).versions.find((v: { version: string }) => v.version === '3').sha256, sha256(classifierAnswering(2)));
    });
  });

  describe("Triton's repository extension", () => {
    const index = (body?: unknown) => requestJson('POST', `${server.url}/v2/repository/index`, { headers: admin, body });
    const entriesOf = async (name: string, body?: unknown) => {
      const { status, body: entries } = await index(body);
      assert.equal(status, 200);
      return entries.filter((e: { name: string }) => e.name === name);
    };

    it('indexes every model of the repository, each version with its state', async () => {
      const all = await index();
      assert.equal(all.status, 200);
      assert.deepEqual(await entriesOf('triton'), [
        { name: 'triton', version: '2', state: 'READY', reason: '' },
        { name: 'triton', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' },
      ]);
      const broken = await entriesOf('broken');
      assert.equal(broken.length, 1);
      assert.equal(broken[0].state, 'UNAVAILABLE');
      assert.deepEqual(await entriesOf('broken', { ready: true }), []);
      assert.deepEqual(await entriesOf('triton', { ready: true }), [{ name: 'triton', version: '2', state: 'READY', reason: '' }]);
      assert.equal((await index({ ready: 'yes' })).status, 400);
    });

    it('lists a model added to the repository after start without versions, and loads it', async () => {
      await writeVersion(repository, 'fresh', 1, classifierModel());
      assert.deepEqual(await entriesOf('fresh'), [{ name: 'fresh' }]);
      const load = await requestJson('POST', `${server.url}/v2/repository/models/fresh/load`, { headers: admin });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      assert.deepEqual(await entriesOf('fresh'), [{ name: 'fresh', version: '1', state: 'READY', reason: '' }]);
      assert.equal(await servedVersion(server.url, 'fresh'), '1');
    });

    it('loads a model with a configuration override, which GET config then shows', async () => {
      assert.equal((await getJson(`${server.url}/v2/models/triton/config`)).body.max_batch_size, 8);
      const config = JSON.stringify({ max_batch_size: 2, version_policy: { specific: { versions: [1] } } });
      const load = await requestJson('POST', `${server.url}/v2/repository/models/triton/load`, { headers: admin, body: { parameters: { config } } });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      const served = await getJson(`${server.url}/v2/models/triton/config`);
      assert.equal(served.status, 200);
      assert.equal(served.body.max_batch_size, 2);
      assert.equal(await servedVersion(server.url, 'triton'), '1', 'the override selects version 1');
      const triton = await adminModel(server.url, 'triton');
      assert.equal(triton.config_override, true);
      assert.deepEqual(await statesOf(server.url, 'triton'), { '2': 'UNAVAILABLE', '1': 'READY' });
      const tooLarge = { inputs: [{ name: 'input', shape: [3, 4], datatype: 'FP32', data: new Array(12).fill(1) }] };
      assert.equal((await postJson(`${server.url}/v2/models/triton/infer`, tooLarge)).status, 400, 'a batch of 3 is over max_batch_size 2');
    });

    it('refuses a bad override or unknown parameters with 400 and keeps the model as it was', async () => {
      const bodies = [
        { parameters: { config: '{"max_batch_size": ' } },
        { parameters: { config: JSON.stringify({ max_batch_sizes: 4 }) } },
        { parameters: { config: 4 } },
        { parameters: { file: 'x' } },
        { params: {} },
      ];
      for (const body of bodies) {
        const answer = await requestJson('POST', `${server.url}/v2/repository/models/triton/load`, { headers: admin, body });
        assert.equal(answer.status, 400, `${JSON.stringify(body)} answered ${answer.status}`);
      }
      assert.equal((await getJson(`${server.url}/v2/models/triton/config`)).body.max_batch_size, 2);
      assert.equal(await servedVersion(server.url, 'triton'), '1');
    });

    it('serves the configuration of the repository again after a load without an override', async () => {
      const override = JSON.stringify({ max_batch_size: 2 });
      const load = (body?: unknown) => requestJson('POST', `${server.url}/v2/repository/models/reconfigured/load`, { headers: admin, body });
      assert.equal((await load({ parameters: { config: override } })).status, 200);
      assert.equal((await getJson(`${server.url}/v2/models/reconfigured/config`)).body.max_batch_size, 2);
      assert.equal((await adminModel(server.url, 'reconfigured')).config_override, true);

      assert.equal((await load()).status, 200);
      assert.equal((await adminModel(server.url, 'reconfigured')).config_override, false);
      assert.equal((await getJson(`${server.url}/v2/models/reconfigured/config`)).body.max_batch_size, 8, "config.json's max_batch_size serves again");
    });

    it('keeps the model serving as it was when a reload with an override fails to load, as Triton does', async () => {
      const before = await getJson(`${server.url}/v2/models/reconfigured/config`);
      assert.equal(before.status, 200);
      const contradicting = JSON.stringify({ input: [{ name: 'input', data_type: 'TYPE_INT32', dims: [4] }] });
      const load = await requestJson('POST', `${server.url}/v2/repository/models/reconfigured/load`, { headers: admin, body: { parameters: { config: contradicting } } });
      assert.equal(load.status, 400);
      assert.match(load.body.error, /INT32/);
      assert.equal(await servedVersion(server.url, 'reconfigured'), '1');
      assert.deepEqual(await getJson(`${server.url}/v2/models/reconfigured/config`), before);
    });

    it('answers 404 to a load or an unload of a model the repository does not have', async () => {
      assert.equal((await requestJson('POST', `${server.url}/v2/repository/models/nowhere/load`, { headers: admin })).status, 404);
      assert.equal((await requestJson('POST', `${server.url}/v2/repository/models/nowhere/unload`, { headers: admin })).status, 404);
    });

    it('unloads every version of a model', async () => {
      const unload = await requestJson('POST', `${server.url}/v2/repository/models/fresh/unload`, { headers: admin });
      assert.equal(unload.status, 200, JSON.stringify(unload.body));
      assert.equal((await getJson(`${server.url}/v2/models/fresh/ready`)).status, 503);
      assert.equal((await postJson(`${server.url}/v2/models/fresh/infer`, classify)).status, 503);
      assert.deepEqual(await entriesOf('fresh', { ready: true }), []);
      const [entry] = await entriesOf('fresh');
      assert.equal(entry.state, 'UNAVAILABLE');
      const reload = await requestJson('POST', `${server.url}/v2/repository/models/fresh/load`, { headers: admin });
      assert.equal(reload.status, 200);
      assert.equal(await servedVersion(server.url, 'fresh'), '1');
    });
  });

  describe('hostile model names and versions', () => {
    const names = [
      '..',
      '.',
      '%2e%2e',
      '%2E%2E',
      '.%2e',
      '..%2F..%2Fescaped',
      '%2e%2e%2fescaped',
      'a%2Fb',
      'a%5Cb',
      'a\\b',
      '..\\escaped',
      '%00',
      'grow%00',
      'a%0Ab',
      'a%0D%0Ab',
      '%1F',
      'a%7Fb',
      'a%09b',
      'a%20b',
      '%C3%A9t%C3%A9',
      'x'.repeat(129),
      '%2Fetc%2Fpasswd',
      '%2Ftmp%2Fescaped',
      'C:%5Cescaped',
      '.hidden',
      '-dash',
      '_under',
      'a..b',
      '%2525',
      'a%25b',
      '~root',
      'a:b',
    ];

    const calls = (name: string): [string, string, string?][] => [
      ['POST', `/admin/models/${name}/versions/1/load`],
      ['POST', `/admin/models/${name}/versions/1/unload`, '{"force":true}'],
      ['PUT', `/admin/models/${name}/default-version`, '{"version":"1"}'],
      ['POST', `/v2/repository/models/${name}/load`, JSON.stringify({ parameters: { config: '{"max_batch_size":2}' } })],
      ['POST', `/v2/repository/models/${name}/unload`],
    ];

    it('answers 4xx to each and leaves the repository and the state directory byte-identical', async () => {
      const before = await snapshot(sandbox);
      const answers: string[] = [];
      for (const name of names) {
        for (const [method, path, body] of calls(name)) {
          const { status, text } = await rawRequest(server.url, method, path, body);
          answers.push(`${status} ${method} ${path}`);
          assert.ok(status >= 400 && status < 500, `${method} ${path} answered ${status}: ${text}`);
          if (status === 400) assert.match(text, /not allowed|not a positive integer|error/);
        }
      }
      assert.deepEqual(await snapshot(sandbox), before);
      assert.ok(answers.some((a) => a.startsWith('400 ')), 'some hostile names reach the name check');
    });

    it('answers 4xx to versions that are not positive integers without leading zeros, and changes nothing', async () => {
      const before = await snapshot(sandbox);
      for (const version of ['0', '01', '-1', '1.0', '1e3', '+1', '1%00', '99999999999999999999', 'latest', '..', '%2e%2e', '1%2F..', '%20']) {
        for (const action of ['load', 'unload']) {
          const path = `/admin/models/grow/versions/${version}/${action}`;
          const { status, text } = await rawRequest(server.url, 'POST', path);
          assert.ok(status >= 400 && status < 500, `${path} answered ${status}: ${text}`);
        }
      }
      assert.deepEqual(await snapshot(sandbox), before);
    });

    it('accepts a model name of 128 characters, the longest the name rule allows', async () => {
      const load = await requestJson('POST', `${server.url}/admin/models/${LONGEST_NAME}/versions/1/load`, { headers: admin });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      const swap = await requestJson('PUT', `${server.url}/admin/models/${LONGEST_NAME}/default-version`, { headers: admin, body: { version: '1' } });
      assert.equal(swap.status, 200, JSON.stringify(swap.body));
      const triton = await requestJson('POST', `${server.url}/v2/repository/models/${LONGEST_NAME}/load`, { headers: admin });
      assert.equal(triton.status, 200, JSON.stringify(triton.body));
      assert.equal(await servedVersion(server.url, LONGEST_NAME), '1');
    });

    it('refuses a model whose directory resolves outside the repository (a symlink out of it)', async () => {
      const load = await requestJson('POST', `${server.url}/admin/models/linked/versions/1/load`, { headers: admin });
      assert.ok(load.status >= 400 && load.status < 500, `the admin load answered ${load.status}`);
      const swap = await requestJson('PUT', `${server.url}/admin/models/linked/default-version`, { headers: admin, body: { version: '1' } });
      assert.ok(swap.status >= 400 && swap.status < 500, `the swap answered ${swap.status}`);
      const triton = await requestJson('POST', `${server.url}/v2/repository/models/linked/load`, { headers: admin });
      assert.ok(triton.status >= 400 && triton.status < 500, `Triton's load answered ${triton.status}`);
      assert.equal((await postJson(`${server.url}/v2/models/linked/infer`, classify)).status, 404);
    });
  });
});

describe('admin token generated into STATE_DIR', () => {
  let stateDir: string;
  let server: TestServer;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-admin-token-'));
    const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
    server = await startTestServer(repository, { STATE_DIR: stateDir });
  });

  after(async () => {
    await server?.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('writes a token readable only by its user, which the admin API then accepts', async () => {
    const file = join(stateDir, 'admin-token');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const token = (await readFile(file, 'utf8')).trim();
    assert.ok(token.length >= 32, `a token of ${token.length} characters`);
    assert.equal((await requestJson('GET', `${server.url}/admin/models`, { headers: bearer(token) })).status, 200);
    assert.equal((await requestJson('POST', `${server.url}/v2/repository/index`, { headers: bearer(token) })).status, 200);
    assert.equal((await requestJson('GET', `${server.url}/admin/models`, { headers: bearer(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`) })).status, 401);
    assert.equal((await requestJson('GET', `${server.url}/admin/models`)).status, 401);
  });
});
