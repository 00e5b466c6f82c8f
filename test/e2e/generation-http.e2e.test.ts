import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TINY_GPT_NAME } from '../../scripts/build-models.js';
import { generativeRepository, sseData, sseEvents } from '../support/generative-models.js';
import { postJson, startTestServer, type TestServer } from '../support/test-server.js';

const GREEDY = { temperature: 0 };

describe('Triton generate extension (tiny_gpt)', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(await generativeRepository());
  });
  after(() => server.close());

  const generate = (body: unknown, path = `/v2/models/${TINY_GPT_NAME}/generate`) => postJson(`${server.url}${path}`, body);

  it('answers the whole text_output with the model name and version', async () => {
    const { status, body, headers } = await generate({ text_input: 'Hello', parameters: { max_tokens: 8, ...GREEDY } });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.model_name, TINY_GPT_NAME);
    assert.equal(body.model_version, '1');
    assert.equal(typeof body.text_output, 'string');
    assert.ok(['length', 'stop'].includes(body.finish_reason));
    assert.equal(headers.get('x-model-version'), '1');
    const versioned = await generate({ text_input: 'Hello', max_tokens: 8, temperature: 0 }, `/v2/models/${TINY_GPT_NAME}/versions/1/generate`);
    assert.equal(versioned.body.text_output, body.text_output, 'parameters at the top level, as Triton passes them on; the same greedy text');
  });

  it('streams one event per token whose texts make the same greedy answer', async () => {
    const request = { text_input: 'Once upon a time', parameters: { max_tokens: 12, ...GREEDY } };
    const whole = await generate(request);
    const response = await fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate_stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type')!, /^text\/event-stream/);
    const events: any[] = [];
    for await (const data of sseEvents(response)) events.push(JSON.parse(data));
    assert.equal(events.length, whole.body.finish_reason === 'length' ? 12 : events.length);
    assert.ok(events.length > 1, 'tokens arrive as separate events');
    assert.equal(events.map((e) => e.text_output).join(''), whole.body.text_output);
    assert.ok(events.every((e) => e.model_name === TINY_GPT_NAME && e.model_version === '1'));
    assert.equal(events.at(-1).finish_reason, whole.body.finish_reason);
  });

  it('makes a seeded sampled answer reproducible', async () => {
    const request = { text_input: 'abc', parameters: { max_tokens: 10, temperature: 1, top_k: 20, top_p: 0.9, seed: 42 } };
    const [first, second] = await Promise.all([generate(request), generate(request)]);
    assert.equal(first.body.text_output, second.body.text_output);
  });

  it('stops at a stop string, which the text does not include', async () => {
    const free = await generate({ text_input: 'Hello', parameters: { max_tokens: 12, ...GREEDY } });
    const text: string = free.body.text_output;
    const stop = text.slice(3, 5);
    assert.ok(stop.length === 2, `the greedy text is long enough to stop in: ${JSON.stringify(text)}`);
    const stopped = await generate({ text_input: 'Hello', parameters: { max_tokens: 12, stop: [stop], ...GREEDY } });
    assert.equal(stopped.body.finish_reason, 'stop');
    assert.equal(stopped.body.text_output, text.slice(0, text.indexOf(stop)));
  });

  it('gives each of 32 concurrent greedy sequences the tokens it gets alone', async () => {
    const requests = Array.from({ length: 32 }, (_, i) => ({ text_input: `prompt ${i}: ${'xyz'.repeat(i % 4)}`, parameters: { max_tokens: 4 + (i % 9), ...GREEDY } }));
    const alone: string[] = [];
    for (const request of requests.slice(0, 8)) alone.push((await generate(request)).body.text_output);
    const together = await Promise.all(requests.map((request) => generate(request)));
    assert.ok(together.every((answer) => answer.status === 200));
    assert.deepEqual(together.slice(0, 8).map((answer) => answer.body.text_output), alone);
    // The rest, alone after: every one of the 32 matches.
    for (let i = 8; i < 32; i++) assert.equal((await generate(requests[i])).body.text_output, together[i].body.text_output, `sequence ${i}`);
  });

  it('refuses bad requests with a 400 naming what is wrong, before any event', async () => {
    const cases: [unknown, RegExp][] = [
      [{ parameters: { max_tokens: 3 } }, /text_input is required/],
      [{ text_input: 'a', parameters: { max_tokens: 0 } }, /max_tokens/],
      [{ text_input: 'a', parameters: { temperature: -1 } }, /temperature/],
      [{ text_input: 'a', parameters: { top_p: 2 } }, /top_p/],
      [{ text_input: 'a', parameters: { beam_width: 2 } }, /unknown parameter\(s\) 'beam_width'/],
      [{ text_input: 'a', parameters: { stop: '' } }, /stop/],
      [{ text_input: 'a'.repeat(5000) }, /max_model_len/],
      [{ text_input: 'a'.repeat(512 * 128 + 1) }, /characters: more than this model's max_model_len/],
    ];
    for (const [body, message] of cases) {
      const answer = await generate(body);
      assert.equal(answer.status, 400, JSON.stringify(body).slice(0, 80));
      assert.match(answer.body.error, message);
    }
    const stream = await postJson(`${server.url}/v2/models/${TINY_GPT_NAME}/generate_stream`, { text_input: 'a', parameters: { max_tokens: -1 } });
    assert.equal(stream.status, 400);
    assert.match(stream.headers.get('content-type')!, /application\/json/);
  });

  it('refuses generate on a model that is not generative, and 404s an unknown one', async () => {
    const notGenerative = await postJson(`${server.url}/v2/models/classifier/generate`, { text_input: 'a' });
    assert.equal(notGenerative.status, 400);
    assert.match(notGenerative.body.error, /not a generative model/);
    assert.equal((await postJson(`${server.url}/v2/models/nope/generate`, { text_input: 'a' })).status, 404);
  });

  it('refuses tensors for a generative model at /infer, and sampling parameters for an ONNX model', async () => {
    const infer = await postJson(`${server.url}/v2/models/${TINY_GPT_NAME}/infer`, { inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], data: ['hi'] }] });
    assert.equal(infer.status, 400);
    assert.match(infer.body.error, /generative model: ask it at \/v2\/models\/tiny_gpt\/generate/);
    const onnx = await postJson(`${server.url}/v2/models/classifier/infer`, { parameters: { max_tokens: 3 }, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    assert.equal(onnx.status, 400);
    assert.match(onnx.body.error, /'max_tokens' is for generative models/);
  });

  it('ends a stream whose deadline passes with an error event, the status already 200', async () => {
    const response = await fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate_stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text_input: 'a', parameters: { max_tokens: 100, timeout: 1, ...GREEDY } }),
    });
    assert.equal(response.status, 200);
    const events = sseData(await response.text()).map((data) => JSON.parse(data));
    assert.match(events.at(-1).error, /timeout/);
  });
});
