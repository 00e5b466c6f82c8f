// The generation engine for real: the tiny GPT built by the model builder, run by
// OnnxGenerationEngine in its worker process. The oracle: greedy tokens decoded under continuous
// batching (sequences joining and leaving at different steps, prompts fed in chunks beside
// decoding sequences) equal those of each prompt decoded alone, and those of a recomputation
// without any cache (onnxruntime called directly with the whole prefix at every token).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { classifierModel, TINY_GPT, TINY_GPT_EOS_IDS, TINY_GPT_VOCAB_SIZE, tinyGptModel, writeTinyGptVersion } from '../../../scripts/build-models.js';
import { SAMPLED_TOKEN, type SamplingParams, type SequenceStepInput } from '../../../src/domain/generation/generation-engine.port.js';
import { GREEDY, seededRandom } from '../../../src/domain/generation/sampling.js';
import { OnnxGenerationEngine } from '../../../src/infra/onnx/generation/onnx-generation-engine.js';
import { ContinuousBatchScheduler } from '../../../src/domain/generation/continuous-batch-scheduler.js';
import { SystemClock } from '../../../src/infra/clock/system-clock.js';
import { CACHE_BLOCK_POSITIONS } from '../../../src/infra/onnx/generation/kv-cache-batch.js';
import { assertRejectsWithCode, failIfWorkersOutliveTests, liveSessionWorkers, runtimeOptions } from '../onnx/onnx-fixtures.js';
import { runtimeKey } from '../../support/runtime-keys.js';

const KEY = runtimeKey('tiny_gpt/1');
/** The tiny GPT's context, and the bytes of keys and values one token holds: layers x heads x head size x 2 x 4. */
const TINY_GPT_INFO = {
  maxPositions: TINY_GPT.positions,
  kvCacheBytesPerToken: TINY_GPT.layers * TINY_GPT.heads * (TINY_GPT.embedding / TINY_GPT.heads) * 2 * 4,
};

/** A sequence of a decoding schedule: its prompt, fed `chunk` tokens a step, from step `joinAt`, then `newTokens` generated. */
interface Plan {
  readonly id: string;
  readonly prompt: readonly number[];
  readonly newTokens: number;
  readonly joinAt: number;
  readonly chunk: number;
  readonly sampling: SamplingParams;
  /** Steps at which the sequence, once decoding, sits out (a paused stream). */
  readonly sitsOut?: (step: number) => boolean;
}

interface ScheduleRun {
  readonly tokens: Map<string, number[]>;
  /** The most sequences one step carried, and whether a step mixed prompt chunks with decoding sequences. */
  readonly mostInOneStep: number;
  readonly mixedSteps: number;
}

/** Drives the engine as a continuous-batching scheduler would: joins, chunked prefill, decode, release when done. */
async function decode(engine: OnnxGenerationEngine, plans: readonly Plan[]): Promise<ScheduleRun> {
  const active = new Map<string, { plan: Plan; fed: number; out: number[] }>();
  const tokens = new Map<string, number[]>();
  let mostInOneStep = 0;
  let mixedSteps = 0;
  for (let step = 0; tokens.size < plans.length; step++) {
    for (const plan of plans) if (plan.joinAt === step) active.set(plan.id, { plan, fed: 0, out: [] });
    if (active.size === 0) continue;
    const stepping = [...active.values()].filter(({ plan, fed }) => fed < plan.prompt.length || !plan.sitsOut?.(step));
    const inputs: SequenceStepInput[] = stepping.map(({ plan, fed, out }) => {
      if (fed < plan.prompt.length) {
        const chunk = plan.prompt.slice(fed, fed + plan.chunk);
        return { sequenceId: plan.id, tokens: chunk, sample: fed + chunk.length === plan.prompt.length, sampling: plan.sampling };
      }
      return { sequenceId: plan.id, tokens: [out.at(-1)!], sample: true, sampling: plan.sampling };
    });
    mostInOneStep = Math.max(mostInOneStep, inputs.length);
    if (inputs.some((input) => input.tokens.length > 1) && inputs.some((input) => input.tokens.length === 1)) mixedSteps++;
    const { outputs } = await engine.step(KEY, inputs);
    assert.deepEqual(outputs.map((output) => output.sequenceId), inputs.map((input) => input.sequenceId), 'one output per input, in order');
    const finished: string[] = [];
    inputs.forEach((input, i) => {
      const sequence = active.get(input.sequenceId)!;
      if (sequence.fed < sequence.plan.prompt.length) sequence.fed += input.tokens.length;
      const token = outputs[i]!.token;
      assert.equal(token !== undefined, input.sample, `${input.sequenceId}: a token exactly when one was asked for`);
      if (token === undefined) return;
      sequence.out.push(token);
      if (sequence.out.length === sequence.plan.newTokens) finished.push(input.sequenceId);
    });
    for (const id of finished) {
      tokens.set(id, active.get(id)!.out);
      active.delete(id);
    }
    engine.release(KEY, finished);
  }
  return { tokens, mostInOneStep, mixedSteps };
}

/** Greedy decoding with no cache at all: the whole prefix through onnxruntime at every token, past empty. */
async function recompute(session: ort.InferenceSession, prompt: readonly number[], newTokens: number): Promise<number[]> {
  const { layers, heads, embedding } = TINY_GPT;
  const headDim = embedding / heads;
  const ids = [...prompt];
  const out: number[] = [];
  while (out.length < newTokens) {
    const n = ids.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (_, i) => BigInt(i)), [1, n]),
    };
    for (let layer = 0; layer < layers; layer++) {
      for (const kind of ['key', 'value']) feeds[`past_key_values.${layer}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
    }
    const logits = (await session.run(feeds, ['logits'])).logits!.data as Float32Array;
    const last = logits.subarray((n - 1) * TINY_GPT_VOCAB_SIZE, n * TINY_GPT_VOCAB_SIZE);
    let best = 0;
    for (let v = 1; v < last.length; v++) if (last[v]! > last[best]!) best = v;
    out.push(best);
    ids.push(best);
  }
  return out;
}

/** 32 sequences: prompts of 1 to 40 tokens, joining over the first 8 steps, some prompts fed in chunks of 5, 16 to 32 tokens each. */
function thirtyTwoPlans(sampling: (i: number) => SamplingParams = () => GREEDY): Plan[] {
  const random = seededRandom(99);
  return Array.from({ length: 32 }, (_, i) => ({
    id: `seq-${i}`,
    prompt: Array.from({ length: 1 + ((i * 13) % 40) }, () => Math.floor(random() * 256)),
    newTokens: 16 + ((i * 7) % 17),
    joinAt: i % 8,
    chunk: i % 3 === 0 ? 5 : 64,
    sampling: sampling(i),
  }));
}

/**
 * 32 sequences joining over 60 steps, so that late ones take the decode batch's rows freed by
 * early ones, and decoding ones sitting steps out now and then (paused streams), which leaves gaps
 * in their rows until the batch is packed.
 */
function joiningLatePlans(): Plan[] {
  const random = seededRandom(7);
  return Array.from({ length: 32 }, (_, i) => ({
    id: `late-${i}`,
    prompt: Array.from({ length: 1 + ((i * 11) % 30) }, () => Math.floor(random() * 256)),
    newTokens: 8 + ((i * 5) % 20),
    joinAt: (i * 2) % 60,
    chunk: i % 4 === 0 ? 7 : 64,
    sampling: GREEDY,
    sitsOut: (step: number) => (step + i) % (3 + (i % 4)) === 0,
  }));
}

describe('OnnxGenerationEngine with the tiny GPT', { timeout: 120_000 }, () => {
  let dir: string;
  let engine: OnnxGenerationEngine;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'generation-engine-it-'));
    await writeTinyGptVersion(join(dir, '1'));
    engine = new OnnxGenerationEngine();
  });

  after(async () => {
    await engine.onApplicationShutdown();
    await rm(dir, { recursive: true, force: true });
    failIfWorkersOutliveTests();
  });

  it('loads: vocabulary, context, end tokens and KV bytes per token from the files beside the model', async () => {
    const info = await engine.load(KEY, join(dir, '1'), runtimeOptions());
    assert.deepEqual(info, {
      vocabSize: TINY_GPT_VOCAB_SIZE,
      maxPositions: TINY_GPT_INFO.maxPositions,
      eosTokenIds: [...TINY_GPT_EOS_IDS],
      kvCacheBytesPerToken: TINY_GPT_INFO.kvCacheBytesPerToken,
      executionProvider: 'cpu',
    });
  });

  it('runs the instance process with gc exposed, so that it collects the outputs it was handed while they are young', async () => {
    const pid = engine.status()[0]!.pid!;
    const flags = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(flags.includes('--expose-gc'), flags.join(' '));
  });

  it('greedy: 32 sequences joining and leaving a continuous batch get the tokens each gets alone, and those of a recomputation without cache', async () => {
    const plans = thirtyTwoPlans();
    const batched = await decode(engine, plans);
    assert.equal(batched.mostInOneStep, 32, 'all 32 sequences decoded in one step at some point');
    assert.ok(batched.mixedSteps > 0, 'prompt chunks were fed beside decoding sequences');

    const session = await ort.InferenceSession.create(join(dir, '1', 'model.onnx'), { intraOpNumThreads: 1 });
    try {
      for (const plan of plans) {
        const alone = await decode(engine, [{ ...plan, joinAt: 0, chunk: plan.prompt.length }]);
        assert.deepEqual(batched.tokens.get(plan.id), alone.tokens.get(plan.id), `${plan.id}: batched = alone`);
        assert.deepEqual(batched.tokens.get(plan.id), await recompute(session, plan.prompt, plan.newTokens), `${plan.id}: batched = recomputed`);
      }
    } finally {
      await session.release();
    }
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 0, tokens: 0, bytes: 0 }, 'every sequence released');
  });

  it('greedy: sequences joining late into freed rows and sitting steps out get the tokens each gets alone, and those of a recomputation', async () => {
    const plans = joiningLatePlans();
    const batched = await decode(engine, plans);
    const session = await ort.InferenceSession.create(join(dir, '1', 'model.onnx'), { intraOpNumThreads: 1 });
    try {
      for (const plan of plans) {
        const alone = await decode(engine, [{ ...plan, joinAt: 0, chunk: plan.prompt.length, sitsOut: undefined }]);
        assert.deepEqual(batched.tokens.get(plan.id), alone.tokens.get(plan.id), `${plan.id}: batched = alone`);
        assert.deepEqual(batched.tokens.get(plan.id), await recompute(session, plan.prompt, plan.newTokens), `${plan.id}: batched = recomputed`);
      }
    } finally {
      await session.release();
    }
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 0, tokens: 0, bytes: 0 }, 'every sequence released');
  });

  it('a decoding sequence fed several tokens again leaves the decode batch with its positions, and gets the tokens of a recomputation', async () => {
    const session = await ort.InferenceSession.create(join(dir, '1', 'model.onnx'), { intraOpNumThreads: 1 });
    try {
      const prompt = [5, 6, 7, 8];
      const first = (await engine.step(KEY, [{ sequenceId: 'refed', tokens: prompt, sample: true, sampling: GREEDY }])).outputs[0]!.token!;
      const beside = { sequenceId: 'beside', tokens: [1], sample: true, sampling: GREEDY };
      const second = (await engine.step(KEY, [{ sequenceId: 'refed', tokens: [first], sample: true, sampling: GREEDY }, beside])).outputs[0]!.token!;
      const third = (await engine.step(KEY, [{ sequenceId: 'refed', tokens: [second, 9, 10], sample: true, sampling: GREEDY }])).outputs[0]!.token!;
      const fourth = (await engine.step(KEY, [{ sequenceId: 'refed', tokens: [third], sample: true, sampling: GREEDY }])).outputs[0]!.token!;
      const recomputed = await recompute(session, [...prompt, first, second, 9, 10], 2);
      assert.deepEqual([third, fourth], recomputed);
      assert.deepEqual(await recompute(session, prompt, 2), [first, second]);
    } finally {
      await session.release();
    }
    engine.release(KEY, ['refed', 'beside']);
  });

  it('runs long prompts in several forwards beside one for the decoding sequences, with the tokens each gets alone', async () => {
    const random = seededRandom(5);
    const prompts = [400, 450, 420].map((length) => Array.from({ length }, () => Math.floor(random() * 256)));
    const alone = [];
    for (const [i, prompt] of prompts.entries()) {
      alone.push((await engine.step(KEY, [{ sequenceId: `alone-${i}`, tokens: prompt, sample: true, sampling: GREEDY }])).outputs[0]!.token);
    }
    engine.release(KEY, prompts.map((_, i) => `alone-${i}`));
    await engine.step(KEY, [{ sequenceId: 'decoding', tokens: [1, 2], sample: true, sampling: GREEDY }]);
    const before = engine.status()[0]!.forwards;
    const { outputs } = await engine.step(KEY, [
      ...prompts.map((prompt, i) => ({ sequenceId: `long-${i}`, tokens: prompt, sample: true, sampling: GREEDY })),
      { sequenceId: 'decoding', tokens: [3], sample: true, sampling: GREEDY },
    ]);
    // 400 + 450 padded to 2 x 450 = 900 positions fit one forward of 1024; the third prompt needs another.
    assert.equal(engine.status()[0]!.forwards - before, 3, 'one decode forward and two prefill forwards');
    assert.deepEqual(outputs.slice(0, 3).map((output) => output.token), alone);
    engine.release(KEY, [...prompts.map((_, i) => `long-${i}`), 'decoding']);
  });

  it('the demo chat: the greedy answer to a question of the chat template is a sentence the model learnt, ended by <|im_end|>', async () => {
    const files = (name: string) => readFile(join(dir, '1', name), 'utf8').then(JSON.parse);
    const tokenizer = new Tokenizer(await files('tokenizer.json'), await files('tokenizer_config.json'));
    const prompt = tokenizer.encode('<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n').ids;
    const answer = await decode(engine, [{ id: 'chat', prompt, newTokens: 80, joinAt: 0, chunk: prompt.length, sampling: GREEDY }]);
    const tokens = answer.tokens.get('chat')!;
    const end = tokens.findIndex((token) => (TINY_GPT_EOS_IDS as readonly number[]).includes(token));
    assert.equal(tokens[end], 258, 'the turn ends with <|im_end|>');
    assert.equal(tokenizer.decode(tokens.slice(0, end)), 'Hello! Ask me about the server, the models or the tokens.');
  });

  it('greedy, overlapped steps: 32 sequences of the scheduler, each step sent before the last answers, get the tokens of steps sent one at a time, and of a recomputation', async () => {
    const random = seededRandom(17);
    const requests = Array.from({ length: 32 }, (_, i) => ({
      prompt: Array.from({ length: 1 + ((i * 13) % 40) }, () => Math.floor(random() * 256)),
      maxTokens: 8 + ((i * 7) % 17),
    }));
    const generate = async (overlapSteps: boolean, which: readonly number[]) => {
      let stepsAtOnce = 0;
      let inFlight = 0;
      const stepper = {
        step: async (inputs: readonly SequenceStepInput[]) => {
          stepsAtOnce = Math.max(stepsAtOnce, ++inFlight);
          try {
            return await engine.step(KEY, inputs);
          } finally {
            inFlight--;
          }
        },
        release: (ids: readonly string[]) => engine.release(KEY, ids),
      };
      const limits = {
        maxNumSeqs: 32, maxModelLen: TINY_GPT_INFO.maxPositions, kvCacheBytes: 64 * 1024 * 1024, kvCacheBytesPerToken: TINY_GPT_INFO.kvCacheBytesPerToken,
        maxPrefillTokensPerStep: 48, maxQueueSize: 0, streamBufferTokens: 1024, maxTimeoutMs: 60_000, priorityLevels: 0, defaultPriorityLevel: 1,
        eosTokenIds: [...TINY_GPT_EOS_IDS], overlapSteps,
      };
      const scheduler = new ContinuousBatchScheduler(stepper, limits, new SystemClock(), undefined, overlapSteps ? 'overlapped' : 'one-at-a-time');
      const decoder = { decode: (ids: readonly number[]) => ids.join(' ') };
      const tokens = await Promise.all(
        which.map(async (i) => {
          // Arrivals spread over the first steps, so sequences join a batch that is decoding.
          await sleep(i % 8);
          const stream = scheduler.submit({ promptTokens: requests[i]!.prompt, parameters: { maxTokens: requests[i]!.maxTokens, ignoreEos: true, sampling: GREEDY, stop: [] }, decoder });
          const out: number[] = [];
          for await (const response of stream) out.push(...response.value.tokenIds);
          return out;
        }),
      );
      return { tokens, stepsAtOnce };
    };
    const all = requests.map((_, i) => i);
    const overlapped = await generate(true, all);
    assert.equal(overlapped.stepsAtOnce, 2, 'two steps were in flight at once');
    const session = await ort.InferenceSession.create(join(dir, '1', 'model.onnx'), { intraOpNumThreads: 1 });
    try {
      for (const i of all) {
        const alone = await generate(false, [i]);
        assert.equal(alone.stepsAtOnce, 1);
        assert.deepEqual(overlapped.tokens[i], alone.tokens[0], `sequence ${i}: overlapped = one step at a time, alone`);
        assert.deepEqual(overlapped.tokens[i], await recompute(session, requests[i]!.prompt, requests[i]!.maxTokens), `sequence ${i}: overlapped = recomputed`);
      }
    } finally {
      await session.release();
    }
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 0, tokens: 0, bytes: 0 }, 'every sequence released');
  });

  it('holds each sequence\'s keys and values in the instance process, counted there and here, until released', async () => {
    const { kvCacheBytesPerToken } = TINY_GPT_INFO;
    await engine.step(KEY, [
      { sequenceId: 'a', tokens: [1, 2, 3], sample: true, sampling: GREEDY },
      { sequenceId: 'b', tokens: [4], sample: false, sampling: GREEDY },
    ]);
    // A prompt's cache is its own, allocated by blocks of positions: 'a' holds one block.
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 2, tokens: 4, bytes: CACHE_BLOCK_POSITIONS * kvCacheBytesPerToken + kvCacheBytesPerToken });
    await engine.step(KEY, [{ sequenceId: 'a', tokens: [5], sample: true, sampling: GREEDY }]);
    // Decoding sequences share the decode batch: 2 rows, right-aligned to the longest past (3) and the new token.
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 2, tokens: 5, bytes: 2 * 4 * kvCacheBytesPerToken });
    assert.equal(engine.status()[0]!.cacheBytes, 5 * kvCacheBytesPerToken);

    engine.release(KEY, ['a', 'unknown']);
    // A leaving sequence frees its row; the row is reused by the next to join, or packed away.
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 1, tokens: 1, bytes: 2 * 4 * kvCacheBytesPerToken });
    assert.deepEqual({ sequences: engine.status()[0]!.sequences, cachedTokens: engine.status()[0]!.cachedTokens }, { sequences: 1, cachedTokens: 1 });
    engine.release(KEY, ['b']);
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 0, tokens: 0, bytes: 0 });
    assert.equal(engine.status()[0]!.cacheBytes, 0);
  });

  it('a sequence released while its step runs stays released, here and in the instance process', async () => {
    const running = engine.step(KEY, [{ sequenceId: 'leaving', tokens: [1, 2, 3], sample: true, sampling: GREEDY }]);
    engine.release(KEY, ['leaving']);
    assert.equal(typeof (await running).outputs[0]!.token, 'number');
    assert.equal(engine.status()[0]!.sequences, 0);
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 0, tokens: 0, bytes: 0 });
  });

  it('a released id starts over as a new sequence', async () => {
    const prompt = [10, 20, 30];
    const first = await engine.step(KEY, [{ sequenceId: 'again', tokens: prompt, sample: true, sampling: GREEDY }]);
    engine.release(KEY, ['again']);
    const second = await engine.step(KEY, [{ sequenceId: 'again', tokens: prompt, sample: true, sampling: GREEDY }]);
    assert.deepEqual(second.outputs, first.outputs);
    engine.release(KEY, ['again']);
  });

  it('sampling: a seed reproduces a run, alone or in a batch; another seed gives another run', async () => {
    const sampled = (seed: number): SamplingParams => ({ temperature: 1, topK: 40, topP: 0.95, seed });
    const plans = thirtyTwoPlans((i) => sampled(1000 + i));
    const batched = await decode(engine, plans);
    for (const plan of plans.slice(0, 4)) {
      const alone = await decode(engine, [{ ...plan, joinAt: 0, chunk: plan.prompt.length }]);
      assert.deepEqual(batched.tokens.get(plan.id), alone.tokens.get(plan.id), `${plan.id}: the same tokens with the same seed`);
      const reseeded = await decode(engine, [{ ...plan, joinAt: 0, sampling: sampled(7) }]);
      assert.notDeepEqual(reseeded.tokens.get(plan.id), alone.tokens.get(plan.id), `${plan.id}: other tokens with another seed`);
    }
    const greedy = await decode(engine, [{ ...plans[0]!, sampling: GREEDY }]);
    assert.notDeepEqual(batched.tokens.get(plans[0]!.id), greedy.tokens.get(plans[0]!.id), 'sampling at temperature 1 is not greedy');
  });

  it('refuses a step past the context (the sequence keeps what it held), bad tokens and bad sampling, and serves on', async () => {
    const { maxPositions } = TINY_GPT_INFO;
    await assertRejectsWithCode(
      engine.step(KEY, [{ sequenceId: 'long', tokens: new Array(maxPositions + 1).fill(1), sample: true, sampling: GREEDY }]),
      'INFERENCE.INVALID_REQUEST',
      new RegExp(`sequence 'long' would hold ${maxPositions + 1} positions, more than the model's context of ${maxPositions}`),
    );
    const full = await engine.step(KEY, [{ sequenceId: 'long', tokens: new Array(maxPositions).fill(1), sample: true, sampling: GREEDY }]);
    assert.equal(typeof full.outputs[0]!.token, 'number', 'a prompt of exactly the context is served');
    await assertRejectsWithCode(
      engine.step(KEY, [{ sequenceId: 'long', tokens: [full.outputs[0]!.token!], sample: true, sampling: GREEDY }]),
      'INFERENCE.INVALID_REQUEST',
      new RegExp(`would hold ${maxPositions + 1} positions`),
    );
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 1, tokens: maxPositions, bytes: maxPositions * TINY_GPT_INFO.kvCacheBytesPerToken }, 'the context is whole blocks');
    engine.release(KEY, ['long']);

    await assertRejectsWithCode(
      engine.step(KEY, [{ sequenceId: 'x', tokens: [1, TINY_GPT_VOCAB_SIZE], sample: true, sampling: GREEDY }]),
      'INFERENCE.INVALID_DATA',
      /token 259 \(at 1\) is not an id of the model's vocabulary of 259/,
    );
    await assertRejectsWithCode(engine.step(KEY, [{ sequenceId: 'x', tokens: [1], sample: true, sampling: { ...GREEDY, topP: 0 } }]), 'INFERENCE.INVALID_REQUEST', /top_p 0/);
    await assertRejectsWithCode(
      engine.step(KEY, [
        { sequenceId: 'x', tokens: [1], sample: true, sampling: GREEDY },
        { sequenceId: 'x', tokens: [2], sample: true, sampling: GREEDY },
      ]),
      'INFERENCE.INVALID_REQUEST',
      /sequence 'x' appears twice/,
    );
    assert.deepEqual(await engine.cacheUse(KEY), { sequences: 0, tokens: 0, bytes: 0 }, 'nothing of a refused step is kept');
    const served = await engine.step(KEY, [{ sequenceId: 'x', tokens: [1], sample: true, sampling: GREEDY }]);
    assert.equal(served.outputs.length, 1);
    engine.release(KEY, ['x']);
  });

  it('unload: the steps sent to the process (two at most) end, those waiting behind them fail, later steps are refused, the process ends', async () => {
    const pid = engine.status()[0]!.pid!;
    const running = engine.step(KEY, [{ sequenceId: 'r', tokens: [1, 2, 3], sample: true, sampling: GREEDY }]);
    const next = engine.step(KEY, [{ sequenceId: 'r', tokens: [SAMPLED_TOKEN], sample: true, sampling: GREEDY }]);
    const waiting = engine.step(KEY, [{ sequenceId: 'w', tokens: [4], sample: true, sampling: GREEDY }]);
    assert.equal(engine.status()[0]!.queuedSteps, 1, 'the third step waits on the server side');
    const unloaded = engine.unload(KEY);
    await assertRejectsWithCode(waiting, 'REGISTRY.VERSION_NOT_READY', /was unloaded before this step ran/);
    assert.equal(typeof (await running).outputs[0]!.token, 'number');
    assert.equal(typeof (await next).outputs[0]!.token, 'number');
    await unloaded;
    await assertRejectsWithCode(engine.step(KEY, [{ sequenceId: 'r', tokens: [1], sample: true, sampling: GREEDY }]), 'REGISTRY.VERSION_NOT_READY', /not loaded/);
    assert.deepEqual(engine.status(), []);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the instance process is gone');
  });
});

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    if (condition()) return;
    await sleep(5);
  }
  throw new Error(`never: ${what}`);
}

describe('OnnxGenerationEngine: an instance process that dies', { timeout: 60_000 }, () => {
  let dir: string;
  let engine: OnnxGenerationEngine;
  const status = () => engine.status()[0]!;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'generation-engine-it-'));
    await writeTinyGptVersion(join(dir, '1'));
    engine = new OnnxGenerationEngine();
    await engine.load(KEY, join(dir, '1'), runtimeOptions());
  });

  after(async () => {
    await engine.onApplicationShutdown();
    await rm(dir, { recursive: true, force: true });
    failIfWorkersOutliveTests();
  });

  it('fails the step it ran, is replaced, refuses the sequences whose cache it held until released, serves new ones', async () => {
    const alone = await engine.step(KEY, [{ sequenceId: 'fresh', tokens: [7, 8, 9], sample: true, sampling: GREEDY }]);
    engine.release(KEY, ['fresh']);
    await engine.step(KEY, [{ sequenceId: 'held', tokens: [1, 2, 3], sample: true, sampling: GREEDY }]);
    const pid = status().pid!;
    // Killed before the step is handed over, so that the step never finishes first (a decode step
    // of this model takes under a millisecond): the process is dead when its 'exit' is heard.
    process.kill(pid, 'SIGKILL');
    const running = engine.step(KEY, [{ sequenceId: 'held', tokens: [4], sample: true, sampling: GREEDY }]);
    await assertRejectsWithCode(running, 'INFERENCE.RUNTIME_ERROR', /the instance process of 'tiny_gpt\/1' was ended by SIGKILL during this step: the KV caches it held are lost/);

    await until(() => status().restartedInstances === 1, 'a new instance process');
    assert.equal(status().lostInstances, 1);
    assert.notEqual(status().pid, pid);
    await assertRejectsWithCode(
      engine.step(KEY, [{ sequenceId: 'held', tokens: [4], sample: true, sampling: GREEDY }]),
      'INFERENCE.RUNTIME_ERROR',
      /sequence 'held' of 'tiny_gpt\/1' lost its KV cache when the instance process ended; release it/,
    );
    assert.deepEqual((await engine.step(KEY, [{ sequenceId: 'fresh', tokens: [7, 8, 9], sample: true, sampling: GREEDY }])).outputs, alone.outputs);
    engine.release(KEY, ['held', 'fresh']);
    const again = await engine.step(KEY, [{ sequenceId: 'held', tokens: [7, 8, 9], sample: true, sampling: GREEDY }]);
    assert.deepEqual(again.outputs, [{ sequenceId: 'held', token: alone.outputs[0]!.token }]);
  });

  it('a sequence released while its step waits for the new process is left out of that step, and nothing of it is held', async () => {
    const lost = status().lostInstances;
    process.kill(status().pid!, 'SIGKILL');
    await until(() => status().lostInstances === lost + 1, 'the process ended');
    const orphan = engine.step(KEY, [{ sequenceId: 'orphan', tokens: [1, 2, 3], sample: true, sampling: GREEDY }]);
    const kept = engine.step(KEY, [{ sequenceId: 'kept', tokens: [4, 5], sample: true, sampling: GREEDY }]);
    engine.release(KEY, ['orphan']);
    assert.deepEqual((await orphan).outputs, [], 'the step no longer feeds it');
    assert.equal((await kept).outputs.length, 1);
    assert.equal(status().sequences, 1, 'the server counts only the kept sequence');
    assert.equal((await engine.cacheUse(KEY)).sequences, 1, 'the new process holds only the kept sequence');
    engine.release(KEY, ['kept']);
  });
});

describe('OnnxGenerationEngine: loads that fail', { timeout: 60_000 }, () => {
  let dir: string;
  const engine = new OnnxGenerationEngine();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'generation-engine-it-'));
    await writeTinyGptVersion(join(dir, 'tiny'));
    await mkdir(join(dir, 'classifier'));
    await writeFile(join(dir, 'classifier', 'model.onnx'), classifierModel());
    await writeFile(join(dir, 'classifier', 'config.json'), JSON.stringify({ n_positions: 8 }));
    await mkdir(join(dir, 'no-config'));
    await writeFile(join(dir, 'no-config', 'model.onnx'), tinyGptModel());
  });

  after(async () => {
    await engine.onApplicationShutdown();
    await rm(dir, { recursive: true, force: true });
    failIfWorkersOutliveTests();
  });

  it('refuses a model that is not a decoder with past, naming what is missing, and leaves no process', async () => {
    await assert.rejects(engine.load(runtimeKey('classifier/1'), join(dir, 'classifier'), runtimeOptions()), /a generative model needs the input 'input_ids'/);
    assert.deepEqual(engine.status(), []);
    assert.equal(liveSessionWorkers(), 0, 'the process that loaded it is gone');
  });

  it('refuses a version directory without config.json, and more than one instance', async () => {
    await assert.rejects(engine.load(runtimeKey('no-config/1'), join(dir, 'no-config'), runtimeOptions()), /a generative model needs config.json beside model.onnx/);
    await assert.rejects(engine.load(runtimeKey('tiny/1'), join(dir, 'tiny'), runtimeOptions({ instanceCount: 2 })), /a generative model runs in one instance .* not 2/);
    assert.deepEqual(engine.status(), []);
  });

  it('loads a key once', async () => {
    await engine.load(runtimeKey('tiny/1'), join(dir, 'tiny'), runtimeOptions());
    await assert.rejects(engine.load(runtimeKey('tiny/1'), join(dir, 'tiny'), runtimeOptions()), /'tiny\/1' is already loaded/);
    assert.equal(engine.status().length, 1);
  });
});
