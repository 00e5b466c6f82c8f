import type { RuntimeOptions } from '../../../src/domain/inference/inference-engine.port.js';
import type { RuntimeKey } from '../../../src/domain/shared/model-version-id.js';
import { GenerationEngine, SAMPLED_TOKEN, type GenerationStep, type GenerativeModelInfo, type SamplingParams, type SequenceStepInput } from '../../../src/domain/generation/generation-engine.port.js';
import type { ChatMessage, TextTokenizer } from '../../../src/domain/generation/text-tokenizer.port.js';

/** The end-of-sequence token of the fake model (its vocabulary is the 256 byte values, then this). */
export const FAKE_EOS = 256;

/** Chooses a sequence's next token from everything it has fed (prompt and generated tokens) and its sampling. */
export type NextToken = (history: readonly number[], sampling: SamplingParams) => number;

/**
 * The default model: it writes the alphabet on from the last letter it read ('c' -> 'd', 'z' -> 'a'),
 * and starts at 'a' after anything else; the seed shifts it when the temperature is not 0, so a
 * seeded run is reproducible and another seed gives another text.
 */
export const alphabet: NextToken = (history, sampling) => {
  const last = history[history.length - 1];
  const shift = sampling.temperature > 0 ? sampling.seed % 26 : 0;
  const letter = last >= 97 && last <= 122 ? last - 97 + 1 : 0;
  return 97 + ((letter + shift) % 26);
};

/** One step the engine ran: each sequence's input. */
export interface StepCall {
  /** The runtime key's text. */
  readonly key: string;
  readonly inputs: readonly SequenceStepInput[];
}

/**
 * A GenerationEngine for unit tests: tokens are bytes, the next token comes from a rule over the
 * sequence's own history (so a sequence's tokens never depend on what it is batched with), and it
 * checks the port's contract on every step (each sequence once, a new sequence starts with its
 * prompt, a sequence samples only when asked, released ids are forgotten). A sequence feeding
 * SAMPLED_TOKEN feeds the token its previous step sampled, as the real engine does (none: it sits
 * the step out). Steps run in the order called and can be held by
 * the test (`hold()`), then released one at a time (`proceed()`), or made to fail.
 */
export class FakeGenerationEngine extends GenerationEngine {
  readonly steps: StepCall[] = [];
  readonly released: string[] = [];
  /** Each live sequence's fed tokens, by key and id. */
  private readonly histories = new Map<string, Map<string, number[]>>();
  /** The token each sequence's last step sampled, by key and id, until its next step. */
  private readonly sampled = new Map<string, number>();
  private held = false;
  private readonly gates: (() => void)[] = [];
  private readonly stepWaiters: { count: number; resolve: () => void }[] = [];
  private failure?: Error;

  constructor(
    private readonly next: NextToken = alphabet,
    readonly info: GenerativeModelInfo = { vocabSize: 257, maxPositions: 64, eosTokenIds: [FAKE_EOS], kvCacheBytesPerToken: 16, executionProvider: 'fake' },
  ) {
    super();
  }

  async load(key: RuntimeKey, _versionDir: string, _options: RuntimeOptions): Promise<GenerativeModelInfo> {
    this.histories.set(key.toString(), new Map());
    return this.info;
  }

  /** Steps wait for {@link proceed} from now on. */
  hold(): void {
    this.held = true;
  }

  /** Lets the oldest held step run; with `all`, lets every step run from now on. */
  proceed(all = false): void {
    if (all) this.held = false;
    const gates = all ? this.gates.splice(0) : this.gates.splice(0, 1);
    for (const gate of gates) gate();
  }

  /** Steps waiting at the gate. */
  get waitingSteps(): number {
    return this.gates.length;
  }

  /** Makes every step from now on fail with `error` (undefined: succeed again). */
  failWith(error: Error | undefined): void {
    this.failure = error;
  }

  /** Resolves once `count` steps have been called in all (held ones included). */
  stepsCalled(count: number): Promise<void> {
    if (this.steps.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.stepWaiters.push({ count, resolve }));
  }

  /** Sequences whose KV cache the engine holds (for `key`; for every key when none is given). */
  liveSequences(key?: RuntimeKey): number {
    if (key) return this.histories.get(key.toString())?.size ?? 0;
    return [...this.histories.values()].reduce((sum, sequences) => sum + sequences.size, 0);
  }

  async step(runtimeKey: RuntimeKey, inputs: readonly SequenceStepInput[]): Promise<GenerationStep> {
    const key = runtimeKey.toString();
    this.steps.push({ key, inputs });
    for (const waiter of this.stepWaiters.filter((w) => this.steps.length >= w.count)) {
      this.stepWaiters.splice(this.stepWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    if (this.held) await new Promise<void>((resolve) => this.gates.push(resolve));
    const sampledBefore = new Map(inputs.map(({ sequenceId }) => [sequenceId, this.sampled.get(`${key}/${sequenceId}`)]));
    for (const { sequenceId } of inputs) this.sampled.delete(`${key}/${sequenceId}`);
    if (this.failure) throw this.failure;
    let histories = this.histories.get(key);
    if (!histories) this.histories.set(key, (histories = new Map()));
    const seen = new Set<string>();
    const outputs = inputs.map((input) => {
      if (seen.has(input.sequenceId)) throw new Error(`sequence ${input.sequenceId} appears twice in one step`);
      seen.add(input.sequenceId);
      if (input.tokens.length === 0) throw new Error(`sequence ${input.sequenceId} feeds no token`);
      let tokens = input.tokens;
      if (tokens.length === 1 && tokens[0] === SAMPLED_TOKEN) {
        const token = sampledBefore.get(input.sequenceId);
        if (token === undefined) return { sequenceId: input.sequenceId };
        tokens = [token];
      }
      let history = histories.get(input.sequenceId);
      if (!history) histories.set(input.sequenceId, (history = []));
      history.push(...tokens);
      if (!input.sample) return { sequenceId: input.sequenceId };
      const token = this.next(history, input.sampling);
      this.sampled.set(`${key}/${input.sequenceId}`, token);
      return { sequenceId: input.sequenceId, token };
    });
    return { outputs, computeMicros: 100 * inputs.length };
  }

  release(key: RuntimeKey, sequenceIds: readonly string[]): void {
    for (const id of sequenceIds) {
      this.histories.get(key.toString())?.delete(id);
      this.sampled.delete(`${key}/${id}`);
      this.released.push(id);
    }
  }

  async unload(key: RuntimeKey): Promise<void> {
    this.histories.delete(key.toString());
  }
}

/**
 * A tokenizer over UTF-8 bytes: each byte a token, so a multi-byte character spans several tokens
 * and decoding a part of one gives U+FFFD, as with a byte-level BPE.
 */
export class ByteTokenizer implements TextTokenizer {
  readonly hasChatTemplate: boolean = true;

  encode(text: string): number[] {
    return [...new TextEncoder().encode(text)];
  }

  decode(tokenIds: readonly number[]): string {
    return new TextDecoder().decode(Uint8Array.from(tokenIds.filter((id) => id < 256)));
  }

  applyChatTemplate(messages: readonly ChatMessage[]): string {
    return `${messages.map((m) => `<${m.role}>${m.content}`).join('')}<assistant>`;
  }
}
