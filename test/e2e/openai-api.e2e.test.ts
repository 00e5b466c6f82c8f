import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { TINY_GPT_NAME } from '../../scripts/build-models.js';
import { generativeRepository } from '../support/generative-models.js';
import { postJson, startTestServer, type TestServer } from '../support/test-server.js';

describe('OpenAI-compatible API, through the official openai client (tiny_gpt)', () => {
  let server: TestServer;
  let client: OpenAI;
  before(async () => {
    server = await startTestServer(await generativeRepository());
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => server.close());

  it('lists the generative models, and only them', async () => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    assert.deepEqual(models.map((m) => m.id), [TINY_GPT_NAME]);
    assert.equal(models[0].object, 'model');
  });

  it('completes a prompt, with usage counts and the greedy text the generate extension gives', async () => {
    const completion = await client.completions.create({ model: TINY_GPT_NAME, prompt: 'Hello', max_tokens: 7, temperature: 0 });
    assert.equal(completion.object, 'text_completion');
    assert.equal(completion.choices.length, 1);
    assert.equal(completion.choices[0].finish_reason, 'length');
    assert.equal(completion.usage!.completion_tokens, 7);
    assert.ok(completion.usage!.prompt_tokens > 0);
    assert.equal(completion.usage!.total_tokens, completion.usage!.prompt_tokens + 7);
    const triton = await postJson(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { text_input: 'Hello', parameters: { max_tokens: 7, temperature: 0 } });
    assert.equal(completion.choices[0].text, triton.body.text_output);
  });

  it('streams a completion chunk by chunk, with the usage chunk asked for', async () => {
    const whole = await client.completions.create({ model: TINY_GPT_NAME, prompt: 'Stream me', max_tokens: 9, temperature: 0 });
    const stream = await client.completions.create({ model: TINY_GPT_NAME, prompt: 'Stream me', max_tokens: 9, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    assert.equal(withChoices.length, 9, 'one chunk per token');
    assert.equal(withChoices.map((c) => c.choices[0].text).join(''), whole.choices[0].text);
    assert.equal(withChoices.at(-1)!.choices[0].finish_reason, 'length');
    assert.deepEqual(chunks.at(-1)!.usage, whole.usage);
  });

  it('answers a chat through the model chat template, whole and streamed', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Say something.' },
    ];
    const chat = await client.chat.completions.create({ model: TINY_GPT_NAME, messages, max_tokens: 6, temperature: 0, seed: 1 });
    assert.equal(chat.object, 'chat.completion');
    assert.equal(chat.choices[0].message.role, 'assistant');
    assert.ok(chat.usage!.prompt_tokens > 20, 'the template wrapped the messages');
    const stream = await client.chat.completions.create({ model: TINY_GPT_NAME, messages, max_tokens: 6, temperature: 0, stream: true });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role;
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(role, 'assistant');
    assert.equal(text, chat.choices[0].message.content);
    assert.equal(finish, chat.choices[0].finish_reason);
  });

  it('a chat that names no max_tokens answers until its end of turn, within the context', async () => {
    const chat = await client.chat.completions.create({ model: TINY_GPT_NAME, messages: [{ role: 'user', content: 'Hello!' }], temperature: 0 });
    assert.ok(['stop', 'length'].includes(chat.choices[0].finish_reason));
    assert.ok(chat.usage!.completion_tokens > 16, `more than the completions default of 16 tokens: ${chat.usage!.completion_tokens}`);
  });

  it('sends data: [DONE] after the last chunk', async () => {
    const response = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: TINY_GPT_NAME, prompt: 'x', max_tokens: 2, stream: true }) });
    const body = await response.text();
    assert.ok(body.trimEnd().endsWith('data: [DONE]'), body);
  });

  it('refuses n>1, unknown models and bad values in OpenAI error shape', async () => {
    await assert.rejects(client.completions.create({ model: TINY_GPT_NAME, prompt: 'a', n: 2 }), (error: any) => {
      assert.ok(error instanceof OpenAI.BadRequestError);
      assert.equal(error.status, 400);
      assert.equal(error.type, 'invalid_request_error');
      assert.match(error.message, /n=1/);
      return true;
    });
    await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'a' }] }), (error: any) => {
      assert.ok(error instanceof OpenAI.NotFoundError);
      assert.equal(error.code, 'model_not_found');
      assert.equal(error.param, 'model');
      return true;
    });
    await assert.rejects(client.completions.create({ model: TINY_GPT_NAME, prompt: 'a', temperature: 500 }), (error: any) => error.status === 400 && /temperature/.test(error.message) && error.param === 'temperature');
    await assert.rejects(client.completions.create({ model: TINY_GPT_NAME, prompt: 'a'.repeat(3000), max_tokens: 4 }), (error: any) => error.status === 400 && error.code === 'context_length_exceeded');
    const raw = await postJson(`${server.url}/v1/chat/completions`, { model: TINY_GPT_NAME });
    assert.equal(raw.status, 400);
    assert.deepEqual(Object.keys(raw.body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.match(raw.body.error.message, /messages/);
  });

  it('makes a seeded sampled completion reproducible, with top_k as an extension', async () => {
    const ask = () => client.completions.create({ model: TINY_GPT_NAME, prompt: 'seed', max_tokens: 8, temperature: 0.9, top_p: 0.95, seed: 7, top_k: 40 } as OpenAI.CompletionCreateParamsNonStreaming);
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.equal(a.choices[0].text, b.choices[0].text);
  });
});
