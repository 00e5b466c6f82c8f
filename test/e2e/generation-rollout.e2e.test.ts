import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { TINY_GPT_CONFIG, TINY_GPT_NAME, writeTinyGptVersion } from '../../scripts/build-models.js';
import { generativeRepository } from '../support/generative-models.js';
import { requestJson, startTestServer, type TestServer } from '../support/test-server.js';

const TOKEN = 'generation-rollout-test-token-0123';

describe('a generative canary through the rollout routing (tiny_gpt versions 1 and 2)', () => {
  let server: TestServer;
  before(async () => {
    const repository = await generativeRepository();
    await writeTinyGptVersion(join(repository, TINY_GPT_NAME, '2'));
    await writeFile(join(repository, TINY_GPT_NAME, 'config.json'), JSON.stringify({ ...TINY_GPT_CONFIG, version_policy: { all: {} } }));
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN });
  });
  after(() => server.close());

  const generate = (headers: Record<string, string> = {}) =>
    requestJson('POST', `${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { headers, body: { text_input: 'hi', parameters: { max_tokens: 2 } } });

  it('routes generations by the rollout: a header rule and a sticky weighted split, on every API', async () => {
    assert.equal((await generate()).body.model_version, '2', 'the default is the latest version');
    const put = await requestJson('PUT', `${server.url}/admin/models/${TINY_GPT_NAME}/rollout`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      body: { stable: 1, canary: { version: 2, weight: 50 }, sticky_header: 'x-user', rules: [{ header: 'x-env', equals: 'canary', version: 2 }] },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal((await generate({ 'x-env': 'canary', 'x-user': 'u0' })).body.model_version, '2');
    const seen = new Set<string>();
    for (let user = 0; user < 40 && seen.size < 2; user++) {
      const answer = await generate({ 'x-user': `user-${user}` });
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('x-model-version'), answer.body.model_version);
      seen.add(answer.body.model_version);
    }
    assert.deepEqual([...seen].sort(), ['1', '2'], 'the split sends some users to the canary, the others to the stable version');
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, defaultHeaders: { 'x-env': 'canary' } });
    const { response } = await client.completions.create({ model: TINY_GPT_NAME, prompt: 'hi', max_tokens: 2 }).withResponse();
    assert.equal(response.headers.get('x-model-version'), '2');
  });
});
