import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TINY_GPT_NAME } from '../../scripts/build-models.js';
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
