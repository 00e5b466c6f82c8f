import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TINY_GPT_NAME } from '../../scripts/build-models.js';
import { generativeRepository, sseEvents } from '../support/generative-models.js';
import type { ModelInferRequest } from '../support/grpc-client.js';
import { eventually, scrape } from '../support/load.js';
import { openUnreadStream } from '../support/raw-grpc.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Per-token flow control, end to end: a client that reads slowly gets its tokens buffered up to
 * GENERATION_STREAM_BUFFER_TOKENS, then its sequence is paused (it keeps its slot, it is left out
 * of the steps), and the other streams go on at their pace.
 *
 * The slow reader is a ModelStreamInfer stream whose client reads nothing: HTTP/2 flow control
 * (a 64 KiB window) stops the server's writes after a few hundred answers, so the sequences'
 * streams fill. A slow Server-Sent Events reader pauses the same way (writeEventStream reads the
 * next token once the socket took the last), but only once the kernel's socket buffers are full:
 * on loopback they take about 4 MB from a client that reads nothing (measured), more than a
 * tiny_gpt sequence (at most 512 tokens of about 100 bytes) can ever send, so no test here can
 * drive an SSE reader to a pause. The fast streams are SSE streams.
 */
const BUFFER_TOKENS = 4;
const SLOW = 8;
const SLOW_TOKENS = 450;
const FAST = 8;
const FAST_TOKENS = 48;

let server: TestServer;

before(async () => {
  server = await startTestServer(await generativeRepository(), { GENERATION_STREAM_BUFFER_TOKENS: String(BUFFER_TOKENS) });
});

after(async () => {
  await server?.close();
});

const slowRequest = (i: number): ModelInferRequest => ({
  id: `slow-${i}`,
  model_name: TINY_GPT_NAME,
  inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(`slow reader ${i}`)] } }],
  parameters: { max_tokens: { int64_param: SLOW_TOKENS }, ignore_eos: { bool_param: true }, temperature: { double_param: 0 } },
});

async function metric(name: string): Promise<number> {
  return (await scrape(server.server.metricsUrl!)).find((sample) => sample.name === name && sample.labels.model === TINY_GPT_NAME)?.value ?? 0;
}

/** A generate_stream read to its end, event by event: the data of each event. */
async function fastStream(i: number): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${server.url}/v2/models/${TINY_GPT_NAME}/generate_stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text_input: `fast reader ${i}`, parameters: { max_tokens: FAST_TOKENS, ignore_eos: true, temperature: 0 } }),
  });
  assert.equal(response.status, 200);
  const events: Record<string, unknown>[] = [];
  for await (const data of sseEvents(response)) events.push(JSON.parse(data) as Record<string, unknown>);
  return events;
}

test('a slow reader\'s sequences are paused once BUFFER_TOKENS answers wait unread, keep their slots, and never slow the streams that read', { timeout: 60_000 }, async (t) => {
  const slow = openUnreadStream(server.server.grpcAddress, Array.from({ length: SLOW }, (_, i) => slowRequest(i)));
  t.after(() => slow.close());

  // Paused, and settled: no token generated between two looks (the last answers the client's
  // windows still took may have let a sequence resume for a token or two on the way).
  let previous: number | undefined;
  const generatedBefore = await eventually(
    'every sequence of the unread stream is paused, and no token is generated',
    async () => {
      const paused = await metric('generation_paused_sequences');
      const generated = await metric('generation_output_tokens_total');
      const settled = paused === SLOW && generated === previous;
      previous = generated;
      return settled ? generated : undefined;
    },
    20_000,
    100,
  );
  assert.equal(await metric('generation_running_sequences'), SLOW, 'paused, they keep their slots');

  // Streams that read, while the slow ones are paused: each gets every token it asked for.
  const fast = await Promise.all(Array.from({ length: FAST }, (_, i) => fastStream(i)));
  for (const events of fast) {
    assert.equal(events.length, FAST_TOKENS, 'one event per token');
    assert.equal(events.at(-1)!.finish_reason, 'length');
    assert.ok(events.every((event) => event.error === undefined));
  }
  assert.equal((await metric('generation_output_tokens_total')) - generatedBefore, FAST * FAST_TOKENS, 'only the streams that read were stepped: the paused ones generated nothing meanwhile');
  assert.equal(await metric('generation_paused_sequences'), SLOW, 'still paused');

  // The slow client reads at last: its sequences resume, and each answers every token, the last final.
  const { code, answers } = await slow.readAll();
  assert.equal(code, '0');
  assert.deepEqual(answers.filter((answer) => answer.error_message), []);
  for (let i = 0; i < SLOW; i++) {
    const mine = answers.filter((answer) => answer.infer_response?.id === `slow-${i}`);
    assert.equal(mine.length, SLOW_TOKENS, `slow-${i}: one answer per token`);
    assert.equal(mine.at(-1)!.infer_response!.parameters!.triton_final_response?.bool_param, true);
  }
  await eventually('the batch is empty', async () => ((await metric('generation_running_sequences')) === 0 ? true : undefined));
  assert.equal(await metric('generation_paused_sequences'), 0);
});
