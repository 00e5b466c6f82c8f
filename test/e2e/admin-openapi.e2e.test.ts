import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { ADMIN_OPENAPI } from '../../src/modules/registry/manage-model-versions/admin-openapi.js';
import { assertMatchesComponent, keysIn } from '../support/openapi-validator.js';
import { makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

const ADMIN_TOKEN = 'openapi-e2e-admin-token-0123456789';

describe('GET /admin/openapi.json', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(await makeRepository([{ name: 'iris', onnx: classifierModel() }]), { ADMIN_TOKEN });
  });
  after(() => server.close());

  it('answers the OpenAPI 3.1 document without a token', async () => {
    const response = await fetch(`${server.url}/admin/openapi.json`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const body = (await response.json()) as any;
    assert.equal(body.openapi, '3.1.0');
    assert.deepEqual(Object.keys(body.paths).sort(), [
      '/admin/models',
      '/admin/models/{model}/default-version',
      '/admin/models/{model}/rollout',
      '/admin/models/{model}/rollout/abort',
      '/admin/models/{model}/rollout/promote',
      '/admin/models/{model}/versions/{version}',
      '/admin/models/{model}/versions/{version}/load',
      '/admin/models/{model}/versions/{version}/unload',
      '/admin/openapi.json',
      '/v2/repository/index',
      '/v2/repository/models/{model}/load',
      '/v2/repository/models/{model}/unload',
    ]);
    assert.deepEqual(body, JSON.parse(JSON.stringify(ADMIN_OPENAPI)));
  });

  it('is right that every other operation answers 401 {"error"} without the token', async () => {
    const checked: string[] = [];
    for (const [path, item] of Object.entries(ADMIN_OPENAPI.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        if (method === 'parameters' || !('security' in operation) || operation.security.length === 0) continue;
        const url = server.url + path.replace('{model}', 'iris').replace('{version}', '1');
        const response = await fetch(url, { method: method.toUpperCase() });
        assert.equal(response.status, 401, `${method} ${path}`);
        assert.equal(typeof ((await response.json()) as { error: unknown }).error, 'string');
        checked.push(`${method} ${path}`);
      }
    }
    assert.equal(checked.length, 12);
  });

  it('describes the fields GET /admin/models answers', async () => {
    const response = await fetch(`${server.url}/admin/models`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(response.status, 200);
    const { models } = (await response.json()) as { models: any[] };
    const { Model, ModelVersion, TensorSpec } = ADMIN_OPENAPI.components.schemas;
    assert.equal(models.length, 1);
    assert.deepEqual(Object.keys(models[0]).sort(), [...Model.required!].sort());
    assert.deepEqual(Object.keys(models[0].versions[0]).sort(), [...ModelVersion.required!].sort());
    assert.match(models[0].versions[0].sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(Object.keys(models[0].versions[0].inputs[0]).sort(), [...TensorSpec.required!].sort());
    assertMatchesComponent('ModelList', { models });
  });

  it('describes the rollout answers, in snake_case, figures and decisions included', async () => {
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const rolloutUrl = `${server.url}/admin/models/iris/rollout`;
    const document = { stable: '1', rules: [{ header: 'X-Env', equals: 'staging', version: 1 }] };
    const started = await fetch(rolloutUrl, { method: 'PUT', headers, body: JSON.stringify(document) });
    assert.equal(started.status, 200);
    const infer = await fetch(`${server.url}/v2/models/iris/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] }),
    });
    assert.equal(infer.status, 200, await infer.text());
    const aborted = await fetch(`${rolloutUrl}/abort`, { method: 'POST', headers: { authorization: headers.authorization } });
    assert.equal(aborted.status, 200);
    const rollout = (await aborted.json()) as any;
    assertMatchesComponent('Rollout', rollout);
    assert.deepEqual(keysIn(rollout).filter((key) => /[A-Z]/.test(key)), [], 'no camelCase key');
    const decision = rollout.history.at(-1);
    assert.equal(decision.action, 'aborted');
    assert.deepEqual(Object.keys(decision.figures[0]).sort(), ['error_rate', 'errors', 'p99_ms', 'requests', 'version']);
    assert.equal(decision.figures[0].requests, 1);
    assert.equal(rollout.rules[0].header, 'x-env', 'header names are kept in lower case');
  });
});
