import type { TraceContext } from '../shared/request-tracer.port.js';
import { RequestQueue, type Queued } from '../inference/request-queue.js';
import type { Clock, TimerHandle } from '../shared/clock.js';
import { DomainError } from '../shared/domain-error.js';
import { ResponseStream } from '../shared/response-stream.js';
import { SAMPLED_TOKEN, type GenerationStep, type SequenceStepInput } from './generation-engine.port.js';
import type { GenerationParameters } from './generation-parameters.js';
import { IncrementalDetokenizer } from './incremental-detokenizer.js';
import { StopStringMatcher } from './stop-strings.js';
import type { TokenDecoder } from './text-tokenizer.port.js';

/** Why a sequence ended (OpenAI's `finish_reason`): an end-of-sequence token or a stop string, or a length limit (max_tokens, max_model_len). */
export type FinishReason = 'stop' | 'length';

export interface TokenUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** One response of a sequence: the token of one step and the text it completes; the final one says why the sequence ended. */
export interface GenerationEvent {
  /** The tokens this response carries: one per step; none on a final response that only ends the sequence (an end-of-sequence token). */
  readonly tokenIds: readonly number[];
  /** The text these tokens complete ('' while a character or a possible stop string is incomplete). */
  readonly text: string;
  readonly finishReason?: FinishReason;
  readonly usage?: TokenUsage;
}

export type GenerationStream = ResponseStream<GenerationEvent>;

/** One sequence to generate, its prompt already tokenized. */
export interface SequenceRequest {
  readonly promptTokens: readonly number[];
  readonly parameters: GenerationParameters;
  /** Turns its tokens into text (the model's tokenizer). */
  readonly decoder: TokenDecoder;
  /** Opaque to the scheduler: handed to the observer with every step the sequence is part of (tracing links them). */
  readonly trace?: TraceContext;
}

/** The steps of one loaded model version, as the scheduler drives them (the engine port, bound to the version). */
export interface SequenceStepper {
  step(inputs: readonly SequenceStepInput[]): Promise<GenerationStep>;
  release(sequenceIds: readonly string[]): void;
}

export interface ContinuousBatchingLimits {
  /** Sequences in the running batch at most (vLLM's max_num_seqs). */
  readonly maxNumSeqs: number;
  /** Positions one sequence may hold, prompt and generated tokens together (vLLM's max_model_len). */
  readonly maxModelLen: number;
  /** The KV cache the running sequences may hold, in bytes. */
  readonly kvCacheBytes: number;
  /** What one position of one sequence holds in the KV cache (every layer, keys and values). */
  readonly kvCacheBytesPerToken: number;
  /** Prompt tokens fed in one step at most, over all sequences (0: whole prompts): long prompts are fed in chunks. */
  readonly maxPrefillTokensPerStep: number;
  /** Sequences waiting at most per priority level (0: unbounded). */
  readonly maxQueueSize: number;
  /** Responses a sequence may have sent that its client has not read; then it is paused. */
  readonly streamBufferTokens: number;
  /** No sequence waits and runs longer than this (ms): it ends with DEADLINE_EXCEEDED then. */
  readonly maxTimeoutMs: number;
  /** Triton's priority levels (0: one level), and the level of a request that names none. */
  readonly priorityLevels: number;
  readonly defaultPriorityLevel: number;
  /** Tokens that end a sequence. */
  readonly eosTokenIds: readonly number[];
  /**
   * Sends each step before the previous one has answered (vLLM's async scheduling, SGLang's
   * overlap scheduler): a decoding sequence feeds the token the engine samples for it at the step
   * in flight (SAMPLED_TOKEN), so the engine starts a step as soon as it ends the one before,
   * without waiting for the scheduler to hear it and answer. See {@link ContinuousBatchScheduler}.
   */
  readonly overlapSteps: boolean;
}

/** What the scheduler reports as it runs: where metrics and traces hear it. */
export interface GenerationObserver {
  /** A step ran: the traces of its sequences, the prompt tokens it fed and the tokens it generated. */
  stepped(step: { readonly traces: readonly (TraceContext | undefined)[]; readonly prefillTokens: number; readonly generatedTokens: number; readonly computeMicros: number }): void;
  /** A sequence's first token, `ms` after it was submitted. */
  firstToken(ms: number): void;
  /** A sequence's next token, `ms` after its previous one. */
  interToken(ms: number): void;
}

const NO_OBSERVER: GenerationObserver = { stepped: () => {}, firstToken: () => {}, interToken: () => {} };

interface Sequence extends Queued {
  readonly id: string;
  readonly request: SequenceRequest;
  readonly stream: GenerationStream;
  readonly submittedAt: number;
  /** Positions reserved in the KV cache: the most this sequence can hold. */
  readonly reservedTokens: number;
  readonly detokenizer: IncrementalDetokenizer;
  readonly stops: StopStringMatcher;
  readonly deadlineTimer: TimerHandle;
  admission: number;
  /** Prompt tokens fed so far. */
  fed: number;
  /** Positions fed so far (prompt and generated): what it holds in the KV cache. */
  held: number;
  readonly generated: number[];
  /** Tokens taken from a step and not yet sent (0 or 1): the plan counts them against the stream's bound. */
  undelivered: number;
  lastTokenAt: number;
  running: boolean;
  /** Its input to the step in flight, while one holds it (overlapped steps: the next is planned before it answers). */
  pending?: SequenceStepInput;
  /** Set when the sequence is to leave at the next step: its client cancelled, or it failed (its deadline passed). */
  leaving?: { readonly error?: DomainError };
  done: boolean;
}

type StepPlan = readonly { readonly sequence: Sequence; readonly input: SequenceStepInput }[];

/** What an engine step came to (never a rejection). */
type StepOutcome = { readonly step: GenerationStep } | { readonly error: unknown };

/** A step sent to the engine. */
interface RunningStep {
  readonly plan: StepPlan;
  readonly outcome: Promise<StepOutcome>;
}

/** A token a step gave a sequence, appended to it and not yet sent. */
interface TakenToken {
  readonly sequence: Sequence;
  readonly token: number;
  /** Its first token (time to first token) or a next one (inter-token latency), and that latency. */
  readonly first: boolean;
  readonly latencyMs: number;
  /** Set when the token ended the sequence, which has left the batch: an end-of-sequence token, or max_tokens / max_model_len reached. */
  readonly ended?: 'eos' | 'length';
}

/** What a finished step leaves to send: its tokens, and what the observer hears of it (none for a failed step). */
interface TakenStep {
  readonly tokens: readonly TakenToken[];
  readonly stats?: Parameters<GenerationObserver['stepped']>[0];
}

/**
 * Iteration-level (continuous) batching for one generative model version, as vLLM and Triton's
 * in-flight batching do it. Each iteration runs one engine step over every active sequence: a
 * prompt chunk for a sequence still in prefill, its last token for one decoding. A sequence
 * submitted while a step runs joins at the next one; a finished (end-of-sequence token, stop
 * string, max_tokens, max_model_len), cancelled or failed sequence leaves at once, its KV cache is
 * released and its slot taken by the next waiting one. The next step is sent as soon as a step's
 * tokens are known, before they are turned into text (see {@link loop}), so a sequence that a
 * stop string ends was already sent in that next step: its token there is dropped.
 *
 * Limits: at most `maxNumSeqs` sequences run; each reserves, when admitted, the KV cache of the
 * most positions it can reach (min(prompt + max_tokens, max_model_len)), so the running ones never
 * hold more than `kvCacheBytes` and none is ever preempted: one that does not fit now waits in the
 * queue (by priority, then arrival; the first waits for room rather than being overtaken), one that
 * could never fit is refused at once. `maxPrefillTokensPerStep` caps the prompt tokens of a step:
 * a long prompt is fed in chunks over several steps while the others keep decoding.
 *
 * Flow control: each sequence's responses wait in its stream, bounded by `streamBufferTokens`; a
 * sequence whose client has not read that many is paused (left out of the steps, keeping its slot
 * and its cache) until the client reads, so a slow reader never slows the others. Its deadline
 * still runs, so a client that never reads frees its slot at the latest then.
 *
 * Overlapped steps (`overlapSteps`): two steps are in flight, the engine's running one and the
 * next, planned as if each sequence of the running one goes on (it feeds SAMPLED_TOKEN, the token
 * the running step samples for it). The engine runs them back to back, so the round trip to the
 * scheduler and the scheduler's own work leave its critical path. What the scheduler learns late
 * costs at most one token of compute, dropped: a sequence that an end-of-sequence token, a stop
 * string or its client ends was already in the next step. What it knows ahead is kept exact: a
 * sequence whose coming token reaches max_tokens or max_model_len is not planned again (so no step
 * passes its KV reservation), and the coming token counts against its stream's bound.
 */
export class ContinuousBatchScheduler {
  private readonly queue: RequestQueue<Sequence>;
  private readonly running: Sequence[] = [];
  private reservedTokens = 0;
  private heldTokens = 0;
  private looping = false;
  private stopped?: DomainError;
  private nextId = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly queueFullErrors = new Map<number, DomainError>();

  constructor(
    private readonly stepper: SequenceStepper,
    private readonly limits: ContinuousBatchingLimits,
    private readonly clock: Clock,
    private readonly observer: GenerationObserver = NO_OBSERVER,
    /** Prefixes sequence ids: ids are unique per scheduler, the engine may hold several versions' sequences. */
    private readonly idPrefix = 'seq',
  ) {
    this.queue = new RequestQueue(Math.max(1, limits.priorityLevels));
  }

  /** Sequences in the running batch (their slots taken), paused ones included. */
  get runningCount(): number {
    return this.running.length;
  }

  /** Running sequences paused because their client has not read `streamBufferTokens` responses: left out of the steps, keeping their slots. */
  get pausedCount(): number {
    let paused = 0;
    for (const sequence of this.running) if (sequence.stream.full) paused++;
    return paused;
  }

  /** Sequences waiting for a slot or for KV cache. */
  get waitingCount(): number {
    return this.queue.size;
  }

  /** Bytes of KV cache the running sequences hold now (their positions fed so far). */
  get kvCacheUsedBytes(): number {
    return this.heldTokens * this.limits.kvCacheBytesPerToken;
  }

  /** Bytes of KV cache reserved by the running sequences: what admission counts against the budget. */
  get kvCacheReservedBytes(): number {
    return this.reservedTokens * this.limits.kvCacheBytesPerToken;
  }

  /**
   * Queues a sequence and returns the stream of its responses (one per generated token, the last
   * final). Refused at once (throws) when the scheduler is stopped, the request could never run
   * (prompt past max_model_len, more KV cache than the whole budget, a priority the model lacks) or
   * its priority level's queue is full.
   */
  submit(request: SequenceRequest): GenerationStream {
    if (this.stopped) throw this.stopped;
    const { maxModelLen, kvCacheBytes, kvCacheBytesPerToken } = this.limits;
    const promptLength = request.promptTokens.length;
    if (promptLength === 0) throw new DomainError('INFERENCE.INVALID_REQUEST', 'the prompt is empty: it must hold at least one token');
    if (promptLength >= maxModelLen) {
      throw new DomainError('GENERATION.TOO_LONG', `the prompt is ${promptLength} tokens; this model's max_model_len of ${maxModelLen} leaves no room to generate (shorten the prompt)`);
    }
    const reservedTokens = Math.min(promptLength + request.parameters.maxTokens, maxModelLen);
    if (reservedTokens * kvCacheBytesPerToken > kvCacheBytes) {
      const fits = Math.floor(kvCacheBytes / kvCacheBytesPerToken);
      throw new DomainError(
        'GENERATION.TOO_LONG',
        `the prompt (${promptLength} tokens) with max_tokens ${request.parameters.maxTokens} needs ${reservedTokens} positions of KV cache (${reservedTokens * kvCacheBytesPerToken} bytes); this model's cache holds ${fits} (${kvCacheBytes} bytes): lower max_tokens or shorten the prompt`,
      );
    }
    const priorityLevel = this.levelOf(request.parameters.priority);
    const full = this.queueFull(priorityLevel);
    if (full) throw full;
    const now = this.clock.now();
    const clientMs = request.parameters.timeoutMicros ? request.parameters.timeoutMicros / 1000 : Infinity;
    const deadlineMs = Math.min(clientMs, this.limits.maxTimeoutMs);
    const stream = new ResponseStream<GenerationEvent>(this.limits.streamBufferTokens);
    const sequence: Sequence = {
      id: `${this.idPrefix}-${this.nextId++}`,
      request,
      stream,
      submittedAt: now,
      reservedTokens,
      detokenizer: new IncrementalDetokenizer(request.decoder),
      stops: new StopStringMatcher(request.parameters.stop),
      deadlineTimer: this.clock.setTimer(() => this.deadlinePassed(sequence, deadlineMs), deadlineMs),
      admission: 0,
      fed: 0,
      held: 0,
      generated: [],
      undelivered: 0,
      lastTokenAt: now,
      priorityLevel,
      waiting: true,
      running: false,
      done: false,
    };
    stream.onCancel(() => this.leave(sequence));
    stream.onDrain(() => this.wake());
    this.queue.push(sequence);
    this.wake();
    return stream;
  }

  /** Refuses new sequences, ends the waiting ones with `reason` (503/UNAVAILABLE) and lets the running ones finish. */
  stop(reason: string): void {
    this.stopped ??= new DomainError('REGISTRY.VERSION_NOT_READY', reason);
    for (const sequence of this.queue.drain()) this.fail(sequence, this.stopped);
    this.notifyIfIdle();
  }

  /**
   * Stops, then resolves once the running sequences have finished. Those still running after
   * `graceMs` end at once with a final error saying `reason`: their clients hear why.
   */
  drain(reason: string, graceMs = Infinity): Promise<void> {
    this.stop(reason);
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (Number.isFinite(graceMs) && this.running.length > 0) {
      const timer = this.clock.setTimer(() => {
        const error = new DomainError('REGISTRY.VERSION_NOT_READY', `${reason}: the generation was ended before it finished`);
        for (const sequence of this.running) sequence.leaving ??= { error };
        this.wake();
      }, graceMs);
      void idle.then(() => this.clock.clearTimer(timer));
    }
    this.notifyIfIdle();
    return idle;
  }

  private levelOf(priority: number | undefined): number {
    const levels = this.limits.priorityLevels;
    if (priority === undefined || priority === 0) return levels > 0 ? this.limits.defaultPriorityLevel : 1;
    if (levels === 0) return 1; // Triton ignores priorities on a model without levels
    if (priority > levels) {
      throw new DomainError('INFERENCE.INVALID_REQUEST', `priority ${priority} is not a level of this model: use 1 (first served) to ${levels}, or 0 for the default ${this.limits.defaultPriorityLevel}`);
    }
    return priority;
  }

  private queueFull(priorityLevel: number): DomainError | undefined {
    const max = this.limits.maxQueueSize;
    if (max === 0 || this.queue.sizeAt(priorityLevel) < max) return undefined;
    let refusal = this.queueFullErrors.get(priorityLevel);
    if (!refusal) {
      refusal = new DomainError('INFERENCE.QUEUE_FULL', `the queue of this model is full (${max} sequences waiting); retry later`, { retryAfterSeconds: 1 });
      this.queueFullErrors.set(priorityLevel, refusal);
    }
    return refusal;
  }

  /** Runs steps while there is something to step; any event that may give it work calls this. */
  private wake(): void {
    if (this.looping) return;
    this.looping = true;
    this.clock.defer(() => void this.loop());
  }

  /**
   * Steps while there is something to step. As soon as a step's tokens are known to the sequences
   * (which continue, which ended by an end-of-sequence token or a length limit), the next step is
   * sent, and only then are this step's tokens turned into text and sent to their clients: that
   * work, and what the clients' reads make of it, runs while the engine computes, rather than
   * between two steps (where the engine waited for it: 0.3-0.4 ms of a 3.6 ms step of 31 sequences,
   * 0.06-0.08 ms now; README, Benchmark). With overlapped steps the one after is sent too: two
   * steps are in flight, and the engine no longer waits for the scheduler at all.
   */
  private async loop(): Promise<void> {
    const inFlight: RunningStep[] = [];
    const depth = this.limits.overlapSteps ? 2 : 1;
    const send = () => {
      while (inFlight.length < depth) {
        const step = this.startStep();
        if (!step) return;
        inFlight.push(step);
      }
    };
    try {
      for (;;) {
        send();
        const running = inFlight.shift();
        if (!running) break;
        // At least one turn of the event loop per step, taken while it runs: arrivals, reads and cancels are seen at the next plan.
        const [outcome] = await Promise.all([running.outcome, new Promise<void>((resolve) => this.clock.defer(resolve))]);
        const taken = this.record(running.plan, outcome);
        send();
        this.deliver(taken);
      }
    } catch (error) {
      // A fault of the scheduler itself (a listener that threw): its sequences fail, the server does not.
      const failure = new DomainError('INFERENCE.RUNTIME_ERROR', `the generation scheduler failed: ${(error as Error)?.message ?? String(error)}`);
      for (const sequence of [...this.running]) this.fail(sequence, failure);
    } finally {
      this.looping = false;
      this.notifyIfIdle();
    }
  }

  /** Plans the next step and sends it to the engine; undefined when no sequence can step now. */
  private startStep(): RunningStep | undefined {
    this.retireLeaving();
    this.admit();
    const plan = this.plan();
    if (plan.length === 0) return undefined;
    for (const { sequence, input } of plan) sequence.pending = input;
    let outcome: Promise<StepOutcome>;
    try {
      outcome = this.stepper.step(plan.map((entry) => entry.input)).then(
        (step) => ({ step }),
        (error: unknown) => ({ error }),
      );
    } catch (error) {
      outcome = Promise.resolve({ error });
    }
    return { plan, outcome };
  }

  /** Takes waiting sequences into the running batch while a slot and their KV cache reservation are free. */
  private admit(): void {
    const { maxNumSeqs, kvCacheBytes, kvCacheBytesPerToken } = this.limits;
    while (this.running.length < maxNumSeqs) {
      const next = this.queue.first();
      if (!next || (this.reservedTokens + next.reservedTokens) * kvCacheBytesPerToken > kvCacheBytes) return;
      this.queue.remove(next);
      next.admission = this.nextId++;
      next.running = true;
      this.reservedTokens += next.reservedTokens;
      this.running.push(next);
    }
    this.running.sort((a, b) => a.priorityLevel - b.priorityLevel || a.admission - b.admission);
  }

  /**
   * What the next step feeds: each running sequence not paused, prompt chunks within the prefill
   * cap. With a step in flight (overlapped steps), a sequence goes on from what that step feeds
   * it: its next prompt chunk, or the token it samples there (SAMPLED_TOKEN).
   */
  private plan(): { sequence: Sequence; input: SequenceStepInput }[] {
    let prefillBudget = this.limits.maxPrefillTokensPerStep > 0 ? this.limits.maxPrefillTokensPerStep : Infinity;
    const plan: { sequence: Sequence; input: SequenceStepInput }[] = [];
    for (const sequence of this.running) {
      const { promptTokens, parameters } = sequence.request;
      const { pending } = sequence;
      // The token the step in flight samples for it: not known yet, but it will be sent.
      const coming = pending?.sample ? 1 : 0;
      // Paused: its client has not read what it was sent (counting the tokens it is about to be sent).
      if (sequence.stream.buffered + sequence.undelivered + coming >= sequence.stream.capacity) continue;
      // The coming token ends it by length: no step after it.
      if (coming && this.reachesLength(sequence, sequence.generated.length + 1)) continue;
      const fed = sequence.fed + (pending && sequence.fed < promptTokens.length ? pending.tokens.length : 0);
      let tokens: readonly number[];
      if (fed < promptTokens.length) {
        if (prefillBudget <= 0) continue;
        const end = fed + Math.min(promptTokens.length - fed, prefillBudget);
        tokens = promptTokens.slice(fed, end);
        prefillBudget -= tokens.length;
      } else {
        tokens = [coming ? SAMPLED_TOKEN : sequence.generated[sequence.generated.length - 1]];
      }
      const sample = fed + (fed < promptTokens.length ? tokens.length : 0) >= promptTokens.length;
      plan.push({ sequence, input: { sequenceId: sequence.id, tokens, sample, sampling: parameters.sampling } });
    }
    return plan;
  }

  /**
   * What a step did to its sequences' counts, and the token each one sampled: appended to the
   * sequence; one that ends with it (an end-of-sequence token, max_tokens, max_model_len) leaves
   * the batch now, so its slot is free for the next step. Turning the tokens into text and
   * sending them is {@link deliver}'s, once the next step is sent. A failed step fails its
   * sequences.
   */
  private record(plan: StepPlan, outcome: StepOutcome): TakenStep {
    // This step no longer holds its sequences (the one sent after it may).
    for (const { sequence, input } of plan) if (sequence.pending === input) delete sequence.pending;
    if ('error' in outcome) {
      const { error } = outcome;
      const failure = error instanceof DomainError ? error : new DomainError('INFERENCE.RUNTIME_ERROR', `the generation step failed: ${(error as Error)?.message ?? String(error)}`);
      for (const { sequence } of plan) this.fail(sequence, failure);
      return { tokens: [] };
    }
    const { step } = outcome;
    let prefillTokens = 0;
    for (const { sequence, input } of plan) {
      // A sequence that ended while the step ran (a stop string in the step before) has released its cache.
      if (sequence.done) continue;
      this.heldTokens += input.tokens.length;
      sequence.held += input.tokens.length;
      if (sequence.fed < sequence.request.promptTokens.length) {
        sequence.fed += input.tokens.length;
        prefillTokens += input.tokens.length;
      }
    }
    const sampled = new Map<string, number | undefined>(step.outputs.map((output) => [output.sequenceId, output.token]));
    const tokens: TakenToken[] = [];
    for (const { sequence, input } of plan) {
      if (!input.sample || sequence.done || sequence.leaving) continue;
      const token = sampled.get(sequence.id);
      if (token === undefined) {
        this.fail(sequence, new DomainError('INFERENCE.RUNTIME_ERROR', `the generation step gave no token for sequence ${sequence.id}`));
        continue;
      }
      tokens.push(this.take(sequence, token));
    }
    const stats = { traces: plan.map(({ sequence }) => sequence.request.trace), prefillTokens, generatedTokens: tokens.length, computeMicros: step.computeMicros };
    return { tokens, stats };
  }

  /** A sequence's new token, appended; the sequence leaves the batch if the token ends it, else it waits to be sent. */
  private take(sequence: Sequence, token: number): TakenToken {
    const now = this.clock.now();
    const first = sequence.generated.length === 0;
    const latencyMs = now - (first ? sequence.submittedAt : sequence.lastTokenAt);
    sequence.lastTokenAt = now;
    sequence.generated.push(token);
    const ended = !sequence.request.parameters.ignoreEos && this.limits.eosTokenIds.includes(token) ? 'eos' : this.reachesLength(sequence, sequence.generated.length) ? 'length' : undefined;
    if (ended) this.remove(sequence);
    else sequence.undelivered++;
    return { sequence, token, first, latencyMs, ended };
  }

  /** Whether a sequence that has generated `generated` tokens has reached max_tokens or max_model_len. */
  private reachesLength(sequence: Sequence, generated: number): boolean {
    return generated >= sequence.request.parameters.maxTokens || sequence.request.promptTokens.length + generated >= this.limits.maxModelLen;
  }

  /** A step's tokens sent to their clients, each with the text it completes; a stop string ends its sequence here. */
  private deliver(taken: TakenStep): void {
    for (const entry of taken.tokens) {
      if (entry.first) this.observer.firstToken(entry.latencyMs);
      else this.observer.interToken(entry.latencyMs);
      if (!entry.ended) entry.sequence.undelivered--;
      try {
        this.send(entry);
      } catch (error) {
        // The tokenizer failed on this sequence's tokens: it fails alone, the others go on.
        this.fail(entry.sequence, new DomainError('INFERENCE.RUNTIME_ERROR', `the generated tokens could not be turned into text: ${(error as Error)?.message ?? String(error)}`));
      }
    }
    if (taken.stats) this.observer.stepped(taken.stats);
  }

  /**
   * A token's response: sent with the text it completes, or the final one. A sequence whose text
   * reaches a stop string ends here; it was already in the step that runs now (sent before its
   * text was known), whose token for it is dropped, and its cache is released after that step.
   */
  private send({ sequence, token, ended }: TakenToken): void {
    if (ended === 'eos') {
      this.complete(sequence, [], this.remainingText(sequence), 'stop');
      return;
    }
    if (!ended && sequence.done) return; // it failed or left meanwhile
    const { text, stopped } = sequence.stops.feed(sequence.detokenizer.push(token));
    if (stopped) {
      this.complete(sequence, [token], text, 'stop');
      return;
    }
    if (ended === 'length') {
      this.complete(sequence, [token], text + this.remainingText(sequence), 'length');
      return;
    }
    sequence.stream.push({ tokenIds: [token], text });
  }

  /** The text still held back when a sequence ends (an incomplete character, a possible stop string). */
  private remainingText(sequence: Sequence): string {
    const { text, stopped } = sequence.stops.feed(sequence.detokenizer.flush());
    return stopped ? text : text + sequence.stops.flush();
  }

  private complete(sequence: Sequence, tokenIds: readonly number[], text: string, finishReason: FinishReason): void {
    const usage = { promptTokens: sequence.request.promptTokens.length, completionTokens: sequence.generated.length };
    this.remove(sequence);
    sequence.stream.end({ tokenIds, text, finishReason, usage });
  }

  private fail(sequence: Sequence, error: DomainError): void {
    this.remove(sequence);
    sequence.stream.fail(error);
  }

  /** Marks a sequence to leave: at once while it waits, at the next step once it runs (a running step still holds it). */
  private leave(sequence: Sequence, error?: DomainError): void {
    if (sequence.done) return;
    if (!sequence.running) {
      this.queue.remove(sequence);
      if (error) this.fail(sequence, error);
      else this.remove(sequence);
      this.notifyIfIdle();
      return;
    }
    sequence.leaving ??= { error };
    this.wake();
  }

  private retireLeaving(): void {
    for (const sequence of [...this.running]) {
      if (!sequence.leaving) continue;
      if (sequence.leaving.error) this.fail(sequence, sequence.leaving.error);
      else this.remove(sequence);
    }
  }

  private deadlinePassed(sequence: Sequence, deadlineMs: number): void {
    this.leave(sequence, new DomainError('INFERENCE.DEADLINE_EXCEEDED', `the generation did not finish within its timeout of ${Math.round(deadlineMs)} ms`));
  }

  /** Takes a sequence out (of the queue or the batch) and releases its KV cache; its stream is the caller's to end. */
  private remove(sequence: Sequence): void {
    if (sequence.done) return;
    sequence.done = true;
    this.clock.clearTimer(sequence.deadlineTimer);
    this.queue.remove(sequence);
    if (!sequence.running) return;
    sequence.running = false;
    this.running.splice(this.running.indexOf(sequence), 1);
    this.reservedTokens -= sequence.reservedTokens;
    this.heldTokens -= sequence.held;
    this.stepper.release([sequence.id]);
    // A slot or cache freed: a waiting sequence may take it at the next step.
    if (this.queue.size > 0) this.wake();
  }

  private notifyIfIdle(): void {
    if (this.looping || this.running.length > 0 || this.queue.size > 0 || this.idleWaiters.length === 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
