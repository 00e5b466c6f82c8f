/**
 * `node .build/bench/generative.js` (after `npm run build:dev`): the generative row. The real
 * server (in this process) serves tiny_gpt over HTTP; every request is Triton's /generate or
 * /generate_stream with `ignore_eos`, so each asks for an exact number of tokens. Figures, as
 * ratios within one run:
 *   1. output tokens/s at 1, 8 and 32 concurrent streams (continuous batching), each stream taking
 *      the next of 128 requests (32 prompts x 4) when one ends, against the same requests decoded one
 *      sequence at a time (goal: >= 5x at 32); measured after a warm-up round;
 *   2. 128 requests (the 32 prompts x 4), with max_tokens from 16 to 128, under static (request-level)
 *      batching, where a batch of 8 is sent together and the next one waits for the batch's longest
 *      sequence, against continuous batching at 8 streams (two alternating halves);
 *   3. prefill chunking on (64 and 256 prompt tokens per step) and off (whole prompts): 28 streams decode
 *      96 tokens each; once all have their first token, 4 prompts of 400 tokens arrive. Time to
 *      first token p50/p99 of all 32, and the p99 and longest gap between two tokens of the 28
 *      decoding streams (the stall a long prefill causes them).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TINY_GPT_NAME, writeTinyGptModel } from '../scripts/build-models.js';
import { startServer, type RunningServer } from '../src/app.js';
import { loadAppConfig } from '../src/infra/config/app-config.js';
import { freePort } from './processes.js';

const PROMPTS = Array.from({ length: 32 }, (_, i) => `Request ${i}: tell me about the server and its models, please.`);
const TOKENS = 64;
/**
 * Each prompt is asked ROUNDS times (128 requests): a stream takes its next request when one ends,
 * so 32 streams run in the steady state of continuous batching (sequences joining and leaving at
 * every step) rather than one burst that starts and ends together.
 */
const ROUNDS = 4;

async function withServer<T>(env: Record<string, string>, run: (url: string) => Promise<T>): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), 'generative-bench-'));
  await writeTinyGptModel(join(root, TINY_GPT_NAME));
  const config = loadAppConfig({ MODEL_REPOSITORY: root, HOST: '127.0.0.1', HTTP_PORT: '0', GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'silent', STATE_DIR: join(root, '.state'), ...env });
  const server: RunningServer = await startServer(config);
  try {
    await server.modelsLoaded;
    return await run(server.httpUrl);
  } finally {
    await server.app.close();
    await rm(root, { recursive: true, force: true });
  }
}

async function generate(url: string, prompt: string, maxTokens: number): Promise<void> {
  const response = await fetch(`${url}/v2/models/${TINY_GPT_NAME}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text_input: prompt, parameters: { max_tokens: maxTokens, temperature: 0, ignore_eos: true } }),
  });
  if (response.status !== 200) throw new Error(`generate answered ${response.status}: ${await response.text()}`);
  await response.arrayBuffer();
}

/** A stream read to its end: when it was sent, and when each of its events arrived (ms, performance.now()). */
async function streamTimes(url: string, prompt: string, maxTokens: number, onFirst?: () => void): Promise<{ sent: number; events: number[] }> {
  const sent = performance.now();
  const response = await fetch(`${url}/v2/models/${TINY_GPT_NAME}/generate_stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text_input: prompt, parameters: { max_tokens: maxTokens, temperature: 0, ignore_eos: true } }),
  });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: number[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { sent, events };
    const now = performance.now();
    for (let i = value.split('\n\n').length - 1; i > 0; i--) events.push(now);
    if (events.length > 0 && events.length === value.split('\n\n').length - 1) onFirst?.();
  }
}

/** Runs `jobs` with `concurrency` workers, each taking the next job when its last one ends; returns the wall seconds. */
async function closedLoop(jobs: readonly (() => Promise<void>)[], concurrency: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
  return (performance.now() - started) / 1000;
}

const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))]!;
const fixed = (n: number, digits = 0) => n.toFixed(digits);

await withServer({ GENERATION_MAX_NUM_SEQS: '32' }, async (url) => {
  // Warmed up (the JIT, the tokenizer, the engine's arena) by the 32 prompts one at a time, then at 32 streams, before anything is measured.
  const warmUp = PROMPTS.map((prompt) => () => generate(url, prompt, TOKENS));
  await closedLoop(warmUp, 1);
  await closedLoop(warmUp, 32);
  const jobs = Array.from({ length: ROUNDS }, () => PROMPTS).flat().map((prompt) => () => generate(url, prompt, TOKENS));
  const total = jobs.length * TOKENS;
  const sequential = total / (await closedLoop(jobs, 1));
  console.log(`generative: one sequence at a time        ${fixed(sequential)} output tokens/s`);
  for (const streams of [1, 8, 32]) {
    const rate = total / (await closedLoop(jobs, streams));
    console.log(`generative: ${String(streams).padStart(2)} concurrent streams           ${fixed(rate)} output tokens/s (${fixed(rate / sequential, 1)}x one at a time)`);
  }
  // Static batching: batches of 8 sent together, the next batch once the longest of them is done;
  // against continuous batching at 8 streams, over the same 128 requests of 16 to 128 tokens, in two
  // alternating halves so that a change in the machine's load weighs on both.
  const varied = Array.from({ length: ROUNDS }, () => PROMPTS).flat().map((prompt, i) => ({ prompt, tokens: 16 + ((i * 37) % 113) }));
  const variedTotal = varied.reduce((sum, { tokens }) => sum + tokens, 0);
  let staticSeconds = 0;
  let continuousSeconds = 0;
  for (const half of [varied.slice(0, varied.length / 2), varied.slice(varied.length / 2)]) {
    const halfJobs = half.map(({ prompt, tokens }) => () => generate(url, prompt, tokens));
    for (let start = 0; start < halfJobs.length; start += 8) staticSeconds += await closedLoop(halfJobs.slice(start, start + 8), 8);
    continuousSeconds += await closedLoop(halfJobs, 8);
  }
  const continuous = variedTotal / continuousSeconds;
  const staticRate = variedTotal / staticSeconds;
  console.log(`generative: static batches of 8 (16-128 tokens)  ${fixed(staticRate)} output tokens/s; continuous at 8 streams ${fixed(continuous)} (${fixed(continuous / staticRate, 2)}x)`);
});

for (const [label, chunk] of [['on (64 tokens/step)', '64'], ['on (256 tokens/step, the default)', '256'], ['off (whole prompts)', '0']] as const) {
  await withServer({ GENERATION_MAX_NUM_SEQS: '32', GENERATION_MAX_PREFILL_TOKENS_PER_STEP: chunk }, async (url) => {
    await generate(url, 'warm up', 8);
    let started = 0;
    let arrive!: () => void;
    const allStarted = new Promise<void>((resolve) => (arrive = resolve));
    const short = PROMPTS.slice(0, 28).map((prompt) => streamTimes(url, prompt, 96, () => ++started === 28 && arrive()));
    await allStarted;
    const longFrom = performance.now();
    const long = await Promise.all(Array.from({ length: 4 }, (_, i) => streamTimes(url, `${i} ${'x'.repeat(400)}`, 8)));
    const longUntil = performance.now();
    const shortTimes = await Promise.all(short);
    const ttfts = [...shortTimes, ...long].map(({ sent, events }) => events[0]! - sent);
    // Gaps between tokens of the decoding streams while the long prompts were being fed.
    const gaps = shortTimes.flatMap(({ events }) => events.slice(1).map((at, i) => ({ at, gap: at - events[i]! })).filter(({ at }) => at >= longFrom && at <= longUntil + 50).map(({ gap }) => gap));
    console.log(
      `generative: chunking ${label}: TTFT p50 ${fixed(quantile(ttfts, 0.5), 1)} ms, p99 ${fixed(quantile(ttfts, 0.99), 1)} ms; ` +
        `decoding streams' inter-token gap while 4x400-token prompts arrive: p99 ${fixed(quantile(gaps, 0.99), 1)} ms, longest ${fixed(Math.max(...gaps), 1)} ms`,
    );
  });
}
