import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ContinuousBatchScheduler, type ContinuousBatchingLimits, type GenerationEvent, type GenerationStream } from '../../../../src/domain/generation/continuous-batch-scheduler.js';
import type { GenerationParameters } from '../../../../src/domain/generation/generation-parameters.js';
import { DomainError } from '../../../../src/domain/shared/domain-error.js';
import type { StreamedResponse } from '../../../../src/domain/shared/response-stream.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import { FakeClock } from '../../support/fake-clock.js';
import { ByteTokenizer, FAKE_EOS, FakeGenerationEngine, type NextToken } from '../../support/fake-generation-engine.js';
import { SAMPLED_TOKEN } from '../../../../src/domain/generation/generation-engine.port.js';
import { runtimeKey } from '../../../support/runtime-keys.js';

const KEY = runtimeKey('m');

const tokenizer = new ByteTokenizer();
const LIMITS: ContinuousBatchingLimits = {
  maxNumSeqs: 8,
  maxModelLen: 64,
  kvCacheBytes: 16 * 1024,
  kvCacheBytesPerToken: 16,
  maxPrefillTokensPerStep: 0,
  maxQueueSize: 0,
  streamBufferTokens: 1024,
  maxTimeoutMs: 60_000,
  priorityLevels: 0,
  defaultPriorityLevel: 1,
  eosTokenIds: [FAKE_EOS],
  overlapSteps: false,
};

function setup(limits: Partial<ContinuousBatchingLimits> = {}, next?: NextToken) {
  const engine = new FakeGenerationEngine(next);
  const clock = new FakeClock();
  const stepper = { step: (inputs: Parameters<FakeGenerationEngine['step']>[1]) => engine.step(KEY, inputs), release: (ids: readonly string[]) => engine.release(KEY, ids) };
  const scheduler = new ContinuousBatchScheduler(stepper, { ...LIMITS, ...limits }, clock);
  return { engine, clock, scheduler };
}

function params(overrides: Partial<GenerationParameters> = {}): GenerationParameters {
  return { maxTokens: 4, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stop: [], ...overrides };
}

function request(prompt: string, overrides: Partial<GenerationParameters> = {}) {
  return { promptTokens: tokenizer.encode(prompt), parameters: params(overrides), decoder: tokenizer };
}

async function collect(stream: GenerationStream): Promise<StreamedResponse<GenerationEvent>[]> {
  const all: StreamedResponse<GenerationEvent>[] = [];
  for await (const response of stream) all.push(response);
  return all;
}

const textOf = (responses: readonly StreamedResponse<GenerationEvent>[]): string => responses.map((r) => r.value.text).join('');

describe('ContinuousBatchScheduler', () => {
  it('streams one response per token, the last final with why it ended and the token counts', async () => {
    const { scheduler, engine } = setup();
    const responses = await collect(scheduler.submit(request('ab', { maxTokens: 3 })));
    assert.deepEqual(responses.map((r) => r.value.text), ['c', 'd', 'e']);
    assert.deepEqual(responses.map((r) => r.final), [false, false, true]);
    assert.equal(responses[2].value.finishReason, 'length');
    assert.deepEqual(responses[2].value.usage, { promptTokens: 2, completionTokens: 3 });
    assert.equal(scheduler.runningCount, 0);
    assert.equal(engine.liveSequences(), 0, 'its KV cache is released');
  });

  it('ends at an end-of-sequence token with finish reason stop, the token not in the text', async () => {
    const { scheduler } = setup({}, (history) => (history.length >= 4 ? FAKE_EOS : 120));
    const responses = await collect(scheduler.submit(request('ab', { maxTokens: 10 })));
    assert.equal(textOf(responses), 'xx');
    const last = responses[responses.length - 1];
    assert.equal(last.final, true);
    assert.equal(last.value.finishReason, 'stop');
    assert.deepEqual(last.value.tokenIds, []);
    assert.deepEqual(last.value.usage, { promptTokens: 2, completionTokens: 3 });
  });

  it('goes past end-of-sequence tokens with ignore_eos, up to max_tokens', async () => {
    const { scheduler } = setup({}, () => FAKE_EOS);
    const responses = await collect(scheduler.submit(request('ab', { maxTokens: 3, ignoreEos: true })));
    assert.equal(responses.length, 3);
    assert.equal(responses[2].value.finishReason, 'length');
  });

  it('ends at a stop string split over tokens, never sending a part of it', async () => {
    const { scheduler } = setup();
    const responses = await collect(scheduler.submit(request('a', { maxTokens: 20, stop: ['efg', 'zz'] })));
    assert.equal(textOf(responses), 'bcd');
    assert.ok(responses.every((r) => !r.value.text.includes('e')), 'the start of the stop string was held back');
    assert.equal(responses[responses.length - 1].value.finishReason, 'stop');
  });

  it('a sequence ended by a stop string was already in the next step: that step\'s token is dropped and its cache released after it', async () => {
    const { scheduler, engine } = setup();
    const responses = await collect(scheduler.submit(request('a', { maxTokens: 20, stop: ['d'] })));
    assert.equal(textOf(responses), 'bc');
    assert.deepEqual(responses.flatMap((r) => r.value.tokenIds), [98, 99, 100], 'the tokens up to the stop string, none after');
    assert.deepEqual(responses[responses.length - 1].value.usage, { promptTokens: 1, completionTokens: 3 });
    assert.deepEqual(engine.steps.map((s) => s.inputs[0].tokens), [[97], [98], [99], [100]], 'the step after the stop ran, sent before its text was known');
    assert.deepEqual(engine.released, ['seq-0']);
    assert.equal(engine.liveSequences(), 0);
    assert.equal(scheduler.runningCount, 0);
  });

  it('sends the next step before turning the last step\'s tokens into text and sending them', async () => {
    const { scheduler, engine } = setup();
    // What the engine had been asked when each token was turned into text.
    const stepsAtDecode: number[] = [];
    const decoder = { decode: (ids: readonly number[]) => (stepsAtDecode.push(engine.steps.length), tokenizer.decode(ids)) };
    const responses = await collect(scheduler.submit({ promptTokens: [97], parameters: params({ maxTokens: 3 }), decoder }));
    assert.equal(textOf(responses), 'bcd');
    assert.equal(engine.steps.length, 3);
    // push() decodes twice per token (the window with and without it); the first token's decodes come once the second step is sent.
    assert.equal(stepsAtDecode[0], 2, 'step 2 was sent before the first token was decoded');
    assert.equal(stepsAtDecode[2], 3, 'step 3 was sent before the second token was decoded');
  });

  it('sends the held-back text of a possible stop string that never completed', async () => {
    const { scheduler } = setup();
    const responses = await collect(scheduler.submit(request('a', { maxTokens: 3, stop: ['dx'] })));
    assert.equal(textOf(responses), 'bcd');
    assert.equal(responses[responses.length - 1].value.finishReason, 'length');
  });

  it('streams multi-byte characters whole, however their bytes fall on tokens', async () => {
    const bytes = [...new TextEncoder().encode('é€😀')];
    const { scheduler } = setup({}, (history) => bytes[history.length - 1] ?? FAKE_EOS);
    const responses = await collect(scheduler.submit({ promptTokens: [120], parameters: params({ maxTokens: 20 }), decoder: tokenizer }));
    assert.deepEqual(responses.map((r) => r.value.text).filter((t) => t !== ''), ['é', '€', '😀']);
  });

  it('a sequence submitted while a step runs joins the next step; one that finishes leaves at once and its slot is reused', async () => {
    const { scheduler, engine } = setup({ maxNumSeqs: 2 });
    engine.hold();
    const a = collect(scheduler.submit(request('a', { maxTokens: 2 })));
    await engine.stepsCalled(1);
    const b = collect(scheduler.submit(request('k', { maxTokens: 3 })));
    const c = collect(scheduler.submit(request('p', { maxTokens: 1 })));
    assert.equal(engine.steps[0].inputs.length, 1);
    engine.proceed();
    await engine.stepsCalled(2);
    assert.deepEqual(engine.steps[1].inputs.map((i) => i.tokens), [[98], [107]], 'a decodes while b prefills, in one step; c waits for a slot');
    assert.equal(scheduler.waitingCount, 1);
    engine.proceed(); // a's second token: a finishes and c takes its slot at the next step
    await engine.stepsCalled(3);
    assert.deepEqual(engine.steps[2].inputs.map((i) => i.tokens), [[108], [112]]);
    assert.equal(engine.released.length, 1);
    engine.proceed(true);
    assert.equal(textOf(await a), 'bc');
    assert.equal(textOf(await b), 'lmn');
    assert.equal(textOf(await c), 'q');
    assert.equal(engine.liveSequences(), 0);
  });

  it('gives every sequence, among 32 joining and leaving, the tokens it gets decoded alone', async () => {
    const next: NextToken = (history) => (history.reduce((sum, t, i) => sum + t * (i + 1), 0) % 26) + 97;
    const prompts = Array.from({ length: 32 }, (_, i) => ({ prompt: `p${i}q${'x'.repeat(i % 5)}`, maxTokens: 3 + (i % 7) }));
    const alone: string[] = [];
    for (const { prompt, maxTokens } of prompts) alone.push(textOf(await collect(setup({}, next).scheduler.submit(request(prompt, { maxTokens })))));
    const { scheduler, engine } = setup({ maxNumSeqs: 8, maxPrefillTokensPerStep: 16 }, next);
    const together = await Promise.all(prompts.map(({ prompt, maxTokens }) => collect(scheduler.submit(request(prompt, { maxTokens })))));
    assert.deepEqual(together.map(textOf), alone);
    assert.equal(Math.max(...engine.steps.map((s) => s.inputs.length)), 8, 'sequences were batched up to max_num_seqs');
  });

  it('feeds long prompts in chunks within the prefill cap while the others keep decoding', async () => {
    const { scheduler, engine } = setup({ maxPrefillTokensPerStep: 4 });
    engine.hold();
    const short = collect(scheduler.submit(request('a', { maxTokens: 5 })));
    await engine.stepsCalled(1);
    const long = collect(scheduler.submit(request('abcdefghij', { maxTokens: 1 })));
    engine.proceed(true);
    await Promise.all([short, long]);
    const shapes = engine.steps.map((s) => s.inputs.map((i) => `${i.tokens.length}${i.sample ? 's' : ''}`).join(','));
    assert.deepEqual(shapes.slice(0, 5), ['1s', '1s,4', '1s,4', '1s,2s', '1s']);
  });

  it('keeps a sequence waiting while the KV cache cannot hold it, and refuses one that could never fit', async () => {
    const { scheduler, engine } = setup({ kvCacheBytes: 16 * 10 });
    assertDomainError(() => scheduler.submit(request('abcdef', { maxTokens: 5 })), 'GENERATION.TOO_LONG', '11 positions', 'holds 10', 'lower max_tokens');
    engine.hold();
    const first = collect(scheduler.submit(request('abc', { maxTokens: 3 })));
    const second = collect(scheduler.submit(request('abc', { maxTokens: 2 })));
    await engine.stepsCalled(1);
    assert.equal(scheduler.runningCount, 1);
    assert.equal(scheduler.waitingCount, 1, 'the second (5 positions) waits while the first holds 6 of 10');
    assert.equal(scheduler.kvCacheReservedBytes, 6 * 16);
    engine.proceed(true);
    assert.equal(textOf(await first), 'def');
    assert.equal(textOf(await second), 'de');
  });

  it('refuses a prompt that leaves no room under max_model_len, and ends a sequence at max_model_len', async () => {
    const { scheduler } = setup({ maxModelLen: 5 });
    assertDomainError(() => scheduler.submit(request('abcde')), 'GENERATION.TOO_LONG', 'max_model_len of 5');
    assertDomainError(() => scheduler.submit(request('')), 'INFERENCE.INVALID_REQUEST', 'empty');
    const responses = await collect(scheduler.submit(request('abc', { maxTokens: 10 })));
    assert.equal(textOf(responses), 'de');
    assert.equal(responses[responses.length - 1].value.finishReason, 'length');
  });

  it('admits waiting sequences by priority level, then by arrival', async () => {
    const { scheduler, engine } = setup({ maxNumSeqs: 1, priorityLevels: 2, defaultPriorityLevel: 2 });
    engine.hold();
    const running = collect(scheduler.submit(request('a', { maxTokens: 1 })));
    await engine.stepsCalled(1);
    const order: string[] = [];
    const low = collect(scheduler.submit(request('k', { maxTokens: 1 }))).then(() => order.push('low'));
    const high = collect(scheduler.submit(request('p', { maxTokens: 1, priority: 1 }))).then(() => order.push('high'));
    assertDomainError(() => scheduler.submit(request('p', { priority: 3 })), 'INFERENCE.INVALID_REQUEST', 'priority 3');
    engine.proceed(true);
    await Promise.all([running, low, high]);
    assert.deepEqual(order, ['high', 'low']);
  });

  it('refuses a sequence beyond the queue size with QUEUE_FULL', async () => {
    const { scheduler, engine } = setup({ maxNumSeqs: 1, maxQueueSize: 1 });
    engine.hold();
    const running = collect(scheduler.submit(request('a', { maxTokens: 1 })));
    await engine.stepsCalled(1);
    const queued = collect(scheduler.submit(request('a', { maxTokens: 1 })));
    assertDomainError(() => scheduler.submit(request('a')), 'INFERENCE.QUEUE_FULL', 'full');
    engine.proceed(true);
    await Promise.all([running, queued]);
  });

  it('ends a sequence whose deadline passes, waiting or running, with DEADLINE_EXCEEDED', async () => {
    const { scheduler, engine, clock } = setup({ maxNumSeqs: 1 });
    engine.hold();
    const running = collect(scheduler.submit(request('a', { maxTokens: 50, timeoutMicros: 30_000 })));
    await engine.stepsCalled(1);
    const waiting = collect(scheduler.submit(request('a', { maxTokens: 1, timeoutMicros: 10_000 })));
    const waitingFailed = assert.rejects(waiting, (error: DomainError) => error.code === 'INFERENCE.DEADLINE_EXCEEDED' && /10 ms/.test(error.message));
    await clock.advance(10);
    await waitingFailed;
    const runningFailed = assert.rejects(running, (error: DomainError) => error.code === 'INFERENCE.DEADLINE_EXCEEDED');
    await clock.advance(20);
    engine.proceed(true);
    await runningFailed;
    assert.equal(scheduler.runningCount, 0);
    assert.equal(engine.liveSequences(), 0);
  });

  it('pauses a sequence whose client does not read, without slowing the others, and resumes it once read', async () => {
    const { scheduler, engine } = setup({ streamBufferTokens: 2 });
    const slow = scheduler.submit(request('a', { maxTokens: 6 }));
    const fast = collect(scheduler.submit(request('k', { maxTokens: 10 })));
    assert.equal(textOf(await fast), 'lmnopqrstu');
    assert.equal(slow.buffered, 2, 'the slow stream holds its bound and no more');
    const slowSteps = engine.steps.filter((s) => s.inputs.some((i) => i.sequenceId === 'seq-0')).length;
    assert.equal(slowSteps, 2, 'the slow sequence was stepped only until its buffer was full');
    assert.equal(scheduler.runningCount, 1, 'paused, it keeps its slot');
    assert.equal(scheduler.pausedCount, 1, 'counted as paused');
    assert.equal(textOf(await collect(slow)), 'bcdefg');
    assert.equal(scheduler.pausedCount, 0);
  });

  it('frees the slot of a cancelled sequence at the next step', async () => {
    const { scheduler, engine } = setup({ maxNumSeqs: 2 });
    engine.hold();
    const cancelled = scheduler.submit(request('a', { maxTokens: 50 }));
    const other = collect(scheduler.submit(request('k', { maxTokens: 3 })));
    await engine.stepsCalled(1);
    assert.equal(scheduler.runningCount, 2);
    cancelled.cancel('client went away');
    assert.equal(scheduler.runningCount, 2, 'the running step still holds it');
    engine.proceed();
    await engine.stepsCalled(2);
    assert.equal(scheduler.runningCount, 1);
    assert.deepEqual(engine.steps[1].inputs.map((i) => i.sequenceId), ['seq-1']);
    assert.ok(engine.released.includes('seq-0'));
    engine.proceed(true);
    assert.equal(textOf(await other), 'lmn');
  });

  it('drops a cancelled sequence that still waits, without ever stepping it', async () => {
    const { scheduler, engine } = setup({ maxNumSeqs: 1 });
    engine.hold();
    const running = collect(scheduler.submit(request('a', { maxTokens: 1 })));
    await engine.stepsCalled(1);
    const waiting = scheduler.submit(request('k', { maxTokens: 1 }));
    waiting.cancel();
    assert.equal(scheduler.waitingCount, 0);
    engine.proceed(true);
    await running;
    assert.ok(engine.steps.every((s) => s.inputs.every((i) => i.sequenceId !== 'seq-1')));
  });

  it('fails the sequences of a step the engine failed, with RUNTIME_ERROR, and releases them', async () => {
    const { scheduler, engine } = setup();
    engine.failWith(new Error('the instance died'));
    await assert.rejects(collect(scheduler.submit(request('a'))), (error: DomainError) => error.code === 'INFERENCE.RUNTIME_ERROR' && /instance died/.test(error.message));
    assert.equal(scheduler.runningCount, 0);
    engine.failWith(undefined);
    assert.equal(textOf(await collect(scheduler.submit(request('a', { maxTokens: 1 })))), 'b', 'it serves on');
  });

  it('drains: refuses new and waiting sequences, lets running ones finish; past the grace they end saying why', async () => {
    const { scheduler, engine, clock } = setup({ maxNumSeqs: 1 });
    engine.hold();
    const running = collect(scheduler.submit(request('a', { maxTokens: 2 })));
    await engine.stepsCalled(1);
    const waiting = collect(scheduler.submit(request('a')));
    const drained = scheduler.drain('the server is shutting down');
    await assert.rejects(waiting, (error: DomainError) => error.code === 'REGISTRY.VERSION_NOT_READY');
    assertDomainError(() => scheduler.submit(request('a')), 'REGISTRY.VERSION_NOT_READY', 'shutting down');
    engine.proceed(true);
    assert.equal(textOf(await running), 'bc');
    await drained;

    const second = setup();
    second.engine.hold();
    const endless = collect(second.scheduler.submit(request('a', { maxTokens: 50 })));
    await second.engine.stepsCalled(1);
    const ended = assert.rejects(endless, (error: DomainError) => error.code === 'REGISTRY.VERSION_NOT_READY' && /shutting down: the generation was ended/.test(error.message));
    const idle = second.scheduler.drain('the server is shutting down', 1_000);
    await second.clock.advance(1_000);
    second.engine.proceed(true);
    await ended;
    await idle;
    void clock;
  });
});

describe('ContinuousBatchScheduler with a failing tokenizer', () => {
  it('fails only the sequence whose tokens could not be decoded', async () => {
    const { scheduler } = setup();
    const broken = { decode: (ids: readonly number[]) => { if (ids.includes(99)) throw new Error('no such token'); return tokenizer.decode(ids); } };
    const failing = collect(scheduler.submit({ promptTokens: [98], parameters: params({ maxTokens: 3 }), decoder: broken }));
    const fine = collect(scheduler.submit(request('k', { maxTokens: 3 })));
    await assert.rejects(failing, (error: DomainError) => error.code === 'INFERENCE.RUNTIME_ERROR' && /no such token/.test(error.message));
    assert.equal(textOf(await fine), 'lmn');
  });
});

describe('ContinuousBatchScheduler with overlapped steps', () => {
  const overlapped = (limits: Partial<ContinuousBatchingLimits> = {}, next?: NextToken) => setup({ overlapSteps: true, ...limits }, next);
  const stepsOf = (engine: FakeGenerationEngine, sequenceId: string) => engine.steps.filter((s) => s.inputs.some((i) => i.sequenceId === sequenceId));

  it('sends the next step before the running one answers, feeding the token it samples; no step is planned past max_tokens', async () => {
    const { scheduler, engine } = overlapped();
    engine.hold();
    const responses = collect(scheduler.submit(request('ab', { maxTokens: 3 })));
    await engine.stepsCalled(2);
    assert.equal(engine.waitingSteps, 2, 'two steps in flight, the first not answered');
    assert.deepEqual(engine.steps.map((s) => s.inputs[0].tokens), [[97, 98], [SAMPLED_TOKEN]]);
    engine.proceed(true);
    assert.equal(textOf(await responses), 'cde');
    assert.equal(engine.steps.length, 3, 'the step that gives the third token is the last: none is sent after it');
    assert.equal(engine.liveSequences(), 0);
  });

  it('gives every sequence, among 32 joining and leaving, the tokens it gets with steps sent one at a time', async () => {
    const next: NextToken = (history) => (history.reduce((sum, t, i) => sum + t * (i + 1), 0) % 26) + 97;
    const prompts = Array.from({ length: 32 }, (_, i) => ({ prompt: `p${i}q${'x'.repeat(i % 5)}`, maxTokens: 3 + (i % 7) }));
    const oneAtATime = setup({ maxNumSeqs: 8, maxPrefillTokensPerStep: 16 }, next).scheduler;
    const expected = await Promise.all(prompts.map(({ prompt, maxTokens }) => collect(oneAtATime.submit(request(prompt, { maxTokens })))));
    const { scheduler, engine } = overlapped({ maxNumSeqs: 8, maxPrefillTokensPerStep: 16 }, next);
    const together = await Promise.all(prompts.map(({ prompt, maxTokens }) => collect(scheduler.submit(request(prompt, { maxTokens })))));
    assert.deepEqual(together.map(textOf), expected.map(textOf));
    assert.ok(engine.steps.some((s) => s.inputs.some((i) => i.tokens[0] === SAMPLED_TOKEN)), 'steps were overlapped');
    assert.equal(engine.liveSequences(), 0);
  });

  it('a sequence ended by an end-of-sequence token was already in the step in flight: its token there is dropped, its cache released after', async () => {
    const { scheduler, engine } = overlapped({}, (history) => (history.length >= 4 ? FAKE_EOS : 120));
    const responses = await collect(scheduler.submit(request('ab', { maxTokens: 10 })));
    assert.equal(textOf(responses), 'xx');
    assert.deepEqual(responses.at(-1)!.value.usage, { promptTokens: 2, completionTokens: 3 }, 'the token computed after the end is not counted');
    assert.equal(engine.steps.length, 4, 'one step past the end-of-sequence token, sent before it was known');
    assert.deepEqual(engine.released, ['seq-0']);
    assert.equal(engine.liveSequences(), 0);
  });

  it('counts the token the step in flight samples against the stream bound: a slow reader holds exactly its bound', async () => {
    const { scheduler, engine } = overlapped({ streamBufferTokens: 2 });
    const slow = scheduler.submit(request('a', { maxTokens: 6 }));
    assert.equal(textOf(await collect(scheduler.submit(request('k', { maxTokens: 10 })))), 'lmnopqrstu');
    assert.equal(slow.buffered, 2, 'the slow stream holds its bound and no more');
    assert.equal(stepsOf(engine, 'seq-0').length, 2, 'stepped only until its buffer was full');
    assert.equal(scheduler.pausedCount, 1);
    assert.equal(textOf(await collect(slow)), 'bcdefg');
  });

  it('a sequence cancelled while two steps hold it leaves at the next plan, released after both', async () => {
    const { scheduler, engine } = overlapped({ maxNumSeqs: 2 });
    engine.hold();
    const cancelled = scheduler.submit(request('a', { maxTokens: 50 }));
    const other = collect(scheduler.submit(request('k', { maxTokens: 3 })));
    await engine.stepsCalled(2);
    cancelled.cancel('client went away');
    engine.proceed();
    await engine.stepsCalled(3);
    assert.deepEqual(engine.steps[2].inputs.map((i) => i.sequenceId), ['seq-1'], 'the step planned after the cancel leaves it out');
    assert.ok(engine.released.includes('seq-0'));
    engine.proceed(true);
    assert.equal(textOf(await other), 'lmn');
    assert.equal(stepsOf(engine, 'seq-0').length, 2);
    assert.equal(engine.liveSequences(), 0);
  });

  it('a failed step fails its sequences; the step behind it answers no token for them, and a sequence that joined there goes on', async () => {
    const { scheduler, engine } = overlapped();
    engine.hold();
    const failing = collect(scheduler.submit(request('a', { maxTokens: 5 })));
    await engine.stepsCalled(2);
    engine.failWith(new Error('the forward failed'));
    engine.proceed();
    await assert.rejects(failing, (error: DomainError) => error.code === 'INFERENCE.RUNTIME_ERROR' && /forward failed/.test(error.message));
    engine.failWith(undefined);
    const joining = collect(scheduler.submit(request('k', { maxTokens: 2 })));
    engine.proceed(true);
    assert.equal(textOf(await joining), 'lm');
    assert.equal(scheduler.runningCount, 0);
    assert.equal(engine.liveSequences(), 0);
  });
});
