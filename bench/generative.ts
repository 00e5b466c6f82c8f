/**
 * `node .build/bench/generative.js` (after `npm run build:dev`): the generative row. The real
 * server (in this process) serves tiny_gpt over HTTP; every request is Triton's /generate or
 * /generate_stream with `ignore_eos`, so each asks for an exact number of tokens. Figures, as
 * ratios within one run:
 *   1. output tokens/s at 1, 8 and 32 concurrent streams (continuous batching), against the same
 *      prompts decoded one sequence at a time (goal: >= 5x at 32);
 *   2. the same 32 prompts, with max_tokens from 16 to 128, under static (request-level) batching,
 *      where a batch of 8 is sent together and the next one waits for the batch's longest sequence,
 *      against continuous batching at 8 streams;
 *   3. time to first token p50/p99 of 32 streams (4 of them with a prompt of 400 tokens) with prefill
 *      chunking on (64 tokens per step) and off (whole prompts).
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

/** Time to the first event of a stream, then the rest read. */
async function firstTokenMs(url: string, prompt: string, maxTokens: number): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${url}/v2/models/${TINY_GPT_NAME}/generate_stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text_input: prompt, parameters: { max_tokens: maxTokens, temperature: 0, ignore_eos: true } }),
  });
  const reader = response.body!.getReader();
  await reader.read();
  const ms = performance.now() - started;
  while (!(await reader.read()).done);
  return ms;
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
  await generate(url, 'warm up', 8);
  const jobs = PROMPTS.map((prompt) => () => generate(url, prompt, TOKENS));
  const total = PROMPTS.length * TOKENS;
  const sequential = total / (await closedLoop(jobs, 1));
  console.log(`generative: one sequence at a time        ${fixed(sequential)} output tokens/s`);
  for (const streams of [1, 8, 32]) {
    const rate = total / (await closedLoop(jobs, streams));
    console.log(`generative: ${String(streams).padStart(2)} concurrent streams           ${fixed(rate)} output tokens/s (${fixed(rate / sequential, 1)}x one at a time)`);
  }
  // Static batching: batches of 8 sent together, the next batch once the longest of them is done.
  const lengths = PROMPTS.map((_, i) => 16 + ((i * 37) % 113));
  const varied = PROMPTS.map((prompt, i) => () => generate(url, prompt, lengths[i]!));
  const variedTotal = lengths.reduce((a, b) => a + b, 0);
  let staticSeconds = 0;
  for (let start = 0; start < varied.length; start += 8) staticSeconds += await closedLoop(varied.slice(start, start + 8), 8);
  const continuous = variedTotal / (await closedLoop(varied, 8));
  const staticRate = variedTotal / staticSeconds;
  console.log(`generative: static batches of 8 (16-128 tokens)  ${fixed(staticRate)} output tokens/s; continuous at 8 streams ${fixed(continuous)} (${fixed(continuous / staticRate, 2)}x)`);
});

for (const [label, chunk] of [['on (64 tokens/step)', '64'], ['off (whole prompts)', '0']] as const) {
  await withServer({ GENERATION_MAX_NUM_SEQS: '32', GENERATION_MAX_PREFILL_TOKENS_PER_STEP: chunk }, async (url) => {
    await generate(url, 'warm up', 8);
    const long = 'x'.repeat(400);
    const ttfts = await Promise.all(PROMPTS.map((prompt, i) => firstTokenMs(url, i % 8 === 0 ? long : prompt, 32)));
    console.log(`generative: TTFT at 32 streams, chunking ${label}: p50 ${fixed(quantile(ttfts, 0.5), 1)} ms, p99 ${fixed(quantile(ttfts, 0.99), 1)} ms`);
  });
}
