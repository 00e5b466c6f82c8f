import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TINY_GPT_NAME, writeTinyGptModel } from '../../scripts/build-models.js';
import { generativeRepository, sseEvents } from '../support/generative-models.js';
import { eventually, scrape } from '../support/load.js';
import { startTestServer } from '../support/test-server.js';

/** Starts a stream and returns its events as they come, once the first has arrived. */
async function openStream(url: string, maxTokens: number): Promise<AsyncGenerator<string>> {
  const response = await fetch(`${url}/v2/models/${TINY_GPT_NAME}/generate_stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text_input: 'a long story', parameters: { max_tokens: maxTokens, temperature: 0, ignore_eos: true } }),
  });
  assert.equal(response.status, 200);
  return sseEvents(response);
}

async function rest(events: AsyncGenerator<string>): Promise<any[]> {
  const all = [];
  for await (const data of events) all.push(JSON.parse(data));
  return all;
}

describe('a client that goes away', () => {
  it('frees its slot: its sequence leaves the running batch long before its max_tokens', async (t) => {
    const server = await startTestServer(await generativeRepository());
    t.after(() => server.close());
    const metricsUrl = server.server.metricsUrl!;
    const value = async (name: string) => (await scrape(metricsUrl)).find((s) => s.name === name && s.labels.model === TINY_GPT_NAME)?.value;
    const controller = new AbortController();
    const response = await fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate_stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text_input: 'a long story', parameters: { max_tokens: 480, temperature: 0, ignore_eos: true } }),
      signal: controller.signal,
    });
    await sseEvents(response).next();
    assert.equal(await value('generation_running_sequences'), 1);
    controller.abort();
    await eventually('the sequence left the batch', async () => ((await value('generation_running_sequences')) === 0 ? true : undefined));
    const generated = (await value('generation_output_tokens_total'))!;
    assert.ok(generated < 480, `it stopped generating (${generated} tokens)`);
    assert.equal((await scrape(metricsUrl)).find((s) => s.name === 'inference_request_failure_total' && s.labels.model === TINY_GPT_NAME && s.labels.reason === 'cancelled')?.value, 1);
  });
});

describe('limits that apply per sequence', () => {
  it('the rate limit refuses a generation over its quota, in each API shape', async (t) => {
    const server = await startTestServer(await generativeRepository(), { THROTTLE_RATE: '0.001', THROTTLE_BURST: '1' });
    t.after(() => server.close());
    const first = await fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text_input: 'a', parameters: { max_tokens: 1 } }) });
    assert.equal(first.status, 200);
    const second = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: TINY_GPT_NAME, prompt: 'a', max_tokens: 1 }) });
    assert.equal(second.status, 429);
    assert.ok(second.headers.get('retry-after'));
    const body = (await second.json()) as any;
    assert.equal(body.error.type, 'rate_limit_error');
    assert.equal(body.error.code, 'rate_limit_exceeded');
  });

  it('the in-flight limit counts a generation until its stream ends', async (t) => {
    const server = await startTestServer(await generativeRepository(), { MAX_INFLIGHT_REQUESTS: '1' });
    t.after(() => server.close());
    const events = await openStream(server.url, 480);
    await events.next();
    const refused = await fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text_input: 'a', parameters: { max_tokens: 1 } }) });
    assert.equal(refused.status, 503);
    assert.match(((await refused.json()) as any).error, /limit of 1 requests in flight/);
    await rest(events);
    await eventually('the permit is back', async () => {
      const again = await fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text_input: 'a', parameters: { max_tokens: 1 } }) });
      return again.status === 200 ? true : undefined;
    });
  });
});

describe('generation metrics', () => {
  it('count the tokens in and out, one time to first token per sequence, the inter-token gaps, the steps and the refusals', async (t) => {
    const server = await startTestServer(await generativeRepository());
    t.after(() => server.close());
    const post = (body: unknown) => fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
    await Promise.all([post({ text_input: 'abc', parameters: { max_tokens: 5, ignore_eos: true } }), post({ text_input: 'defgh', parameters: { max_tokens: 3, ignore_eos: true } })]);
    await post({ text_input: 'x'.repeat(600) });
    const samples = await scrape(server.server.metricsUrl!);
    const value = (name: string, labels: Record<string, string> = {}) =>
      samples.find((s) => s.name === name && s.labels.model === TINY_GPT_NAME && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    assert.equal(value('generation_output_tokens_total'), 8);
    assert.equal(value('generation_prompt_tokens_total'), 8, 'the prompts, byte by byte');
    assert.equal(value('generation_time_to_first_token_seconds_count'), 2);
    assert.equal(value('generation_inter_token_latency_seconds_count'), 4 + 2);
    assert.ok(value('generation_steps_total')! >= 5);
    assert.equal(value('generation_refusals_total', { reason: 'too_long' }), 1);
    assert.equal(value('generation_running_sequences'), 0);
    assert.equal(value('generation_kv_cache_used_bytes'), 0, 'every cache released');
    assert.ok(value('generation_kv_cache_capacity_bytes')! > 0);
    assert.equal(value('inference_request_success_total'), 2);
  });
});

describe('overlapped steps (GENERATION_OVERLAP_STEPS, parameters.overlap_steps)', () => {
  it('compute one step past an end-of-sequence token when on (the step sent before it was known), none when a model turns them off', async (t) => {
    const root = await generativeRepository();
    await writeTinyGptModel(join(root, 'tiny_gpt_one_step_at_a_time'));
    const configFile = join(root, 'tiny_gpt_one_step_at_a_time', 'config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    await writeFile(configFile, JSON.stringify({ ...config, parameters: { ...config.parameters, overlap_steps: { string_value: 'false' } } }));
    const server = await startTestServer(root);
    t.after(() => server.close());
    const chat = async (model: string) => {
      const response = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 200, temperature: 0 }),
      });
      return (await response.json()) as any;
    };
    const overlapped = await chat(TINY_GPT_NAME);
    const oneAtATime = await chat('tiny_gpt_one_step_at_a_time');
    assert.equal(overlapped.choices[0].finish_reason, 'stop', 'ended by its end-of-sequence token');
    assert.equal(overlapped.choices[0].message.content, oneAtATime.choices[0].message.content);
    const tokens = overlapped.usage.completion_tokens;
    const samples = await scrape(server.server.metricsUrl!);
    const steps = (model: string) => samples.find((s) => s.name === 'generation_steps_total' && s.labels.model === model)?.value;
    assert.equal(steps('tiny_gpt_one_step_at_a_time'), tokens, 'one step per token, the prompt fed whole in the first');
    assert.equal(steps(TINY_GPT_NAME), tokens + 1, 'and one more, sent before the end-of-sequence token was known');
    const shown = (await (await fetch(`${server.url}/v2/models/tiny_gpt_one_step_at_a_time/config`)).json()) as any;
    assert.deepEqual(shown.parameters.overlap_steps, { string_value: '0' });
  });
});

describe('generative streams at shutdown (SIGTERM)', () => {
  it('lets a running stream finish within the grace period', async (t) => {
    const server = await startTestServer(await generativeRepository(), { SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_GRACE_MS: '60000' });
    t.after(() => server.close());
    const events = await openStream(server.url, 20);
    const first = JSON.parse((await events.next()).value as string);
    const closing = server.server.shutdown();
    const others = await rest(events);
    await closing;
    assert.ok([first, ...others].every((event) => event.error === undefined), JSON.stringify(others.at(-1)));
    assert.ok(['length', 'stop'].includes(others.at(-1).finish_reason), 'it ran to its end');
  });

  it('ends a stream still running past the grace period with a final event saying why', async (t) => {
    const server = await startTestServer(await generativeRepository(), { SHUTDOWN_DRAIN_DELAY_MS: '0', SHUTDOWN_GRACE_MS: '100' });
    t.after(() => server.close());
    const events = await openStream(server.url, 480);
    await events.next();
    const closing = server.server.shutdown();
    const others = await rest(events);
    await closing;
    assert.ok(others.length < 479, 'it did not run to its end');
    assert.match(others.at(-1).error, /the server is shutting down: the generation was ended before it finished/);
  });
});
