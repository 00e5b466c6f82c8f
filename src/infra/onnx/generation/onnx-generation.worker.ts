/**
 * Entry of a generation worker: a child process of the server hosting the session of one
 * generative model version and the KV cache of every sequence it decodes. It is started, loaded,
 * watched and killed like a session worker (SessionWorkerPool's startWorker; session-runtime.ts).
 *
 * A step runs one forward over the sequences that feed one token (decode), and others over those
 * that feed several (a prompt or a chunk of one: prefill). The decoding sequences' caches stay
 * batched between steps (decode-batch.ts: the model's presents are the next step's past, no copy
 * per step); a prefill forward left-pads its sequences' own caches to the longest and their new
 * tokens to the most (kv-cache-batch.ts), masked out, and a sequence whose prompt is done joins the
 * decode batch at its first decode step. Keeping prefill apart
 * means a long prompt chunk never pads every decoding sequence to its length (32 sequences beside
 * a 256-token chunk would compute 32 x 256 positions instead of 256 + 31). Prefill sequences share
 * a forward while its padded positions stay within PREFILL_POSITIONS_PER_FORWARD
 * (kv-cache-batch.ts): the model returns logits for every position, batch x seq x vocab floats
 * (200 MB for 1024 positions of a 50k vocabulary), so a step's many prompts never make one huge
 * answer.
 */
import * as ort from 'onnxruntime-node';
import { SAMPLED_TOKEN, type SequenceStepInput } from '../../../domain/generation/generation-engine.port.js';
import { sampleToken, seededRandom } from '../../../domain/generation/sampling.js';
import type { ModelSignature } from '../../../domain/inference/tensor.js';
import { createSession, describe, dieWithParent } from '../session-runtime.js';
import type { SessionSettings } from '../worker-protocol.js';
import { decoderLayout, pastKeyName, pastValueName, presentKeyName, presentValueName, type DecoderLayout } from './decoder-layout.js';
import { stepInputsOf, type FromGenerationWorker, type ToGenerationWorker } from './generation-worker-protocol.js';
import { DecodeBatch } from './decode-batch.js';
import { YoungOutputCollector } from './young-output-collector.js';
import { appendPresents, cacheBytes, emptyCache, lastLogits, padBatch, prefillGroups, type BatchFeeds, type BatchRow, type SequenceCache } from './kv-cache-batch.js';

function send(message: FromGenerationWorker): void {
  process.send!(message);
}

interface Sequence {
  /** Its own cache while it is not in the decode batch (a new sequence, or one whose prompt is being fed). */
  cache?: SequenceCache;
  /** The sequence's own draws, seeded at its first step: its tokens never depend on its batch. */
  readonly random: () => number;
  /** The token its last step sampled, until its next step: what SAMPLED_TOKEN stands for there. */
  sampled?: number;
}

class Decoder {
  private readonly sequences = new Map<string, Sequence>();
  /** The caches of the sequences that decode, kept batched between steps (decode-batch.ts). */
  private readonly batch: DecodeBatch;
  private readonly outputNames: string[];

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly layout: DecoderLayout,
    private readonly outputs: YoungOutputCollector,
  ) {
    this.batch = new DecodeBatch(layout);
    this.outputNames = ['logits'];
    for (let layer = 0; layer < layout.layers; layer++) this.outputNames.push(presentKeyName(layer), presentValueName(layer));
  }

  /**
   * Runs a step; the token each input sampled, in their order (-1 where it sampled none). An input
   * feeding SAMPLED_TOKEN feeds the token its sequence's last step sampled; a sequence with none
   * (that step failed) sits this step out.
   */
  async step(given: readonly SequenceStepInput[]): Promise<{ tokens: Int32Array; forwards: number }> {
    const inputs = this.withSampledTokens(given);
    const decode = inputs.filter((input) => input.tokens.length === 1);
    const prefill = inputs.filter((input) => input.tokens.length > 1);
    const chosen = new Map<string, number>();
    const updates: (() => void)[] = [];
    if (decode.length > 0) updates.push(await this.decodeForward(decode, chosen));
    const groups = prefillGroups(prefill);
    for (const group of groups) updates.push(await this.prefillForward(group, chosen));
    // The caches change only once every forward of the step has succeeded: a failed step leaves them as they were.
    for (const update of updates) update();
    const forwards = groups.length + (decode.length > 0 ? 1 : 0);
    for (const [sequenceId, token] of chosen) this.sequences.get(sequenceId)!.sampled = token;
    const tokens = Int32Array.from(given, ({ sequenceId }) => chosen.get(sequenceId) ?? -1);
    return { tokens, forwards };
  }

  /** The inputs with SAMPLED_TOKEN replaced, each sequence's sampled token taken (a step that fails leaves none). */
  private withSampledTokens(given: readonly SequenceStepInput[]): SequenceStepInput[] {
    const inputs: SequenceStepInput[] = [];
    for (const input of given) {
      const sequence = this.sequences.get(input.sequenceId);
      const sampled = sequence?.sampled;
      if (sequence) delete sequence.sampled;
      if (input.tokens.length !== 1 || input.tokens[0] !== SAMPLED_TOKEN) inputs.push(input);
      else if (sampled !== undefined) inputs.push({ ...input, tokens: [sampled] });
    }
    return inputs;
  }

  private sequenceOf(input: SequenceStepInput): Sequence {
    return this.sequences.get(input.sequenceId) ?? { random: seededRandom(input.sampling.seed) };
  }

  private async run(feeds: BatchFeeds) {
    const { layers, kvHeads, headDim } = this.layout;
    const { batch, past, seq } = feeds;
    const tensors: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', feeds.inputIds, [batch, seq]),
      attention_mask: new ort.Tensor('int64', feeds.attentionMask, [batch, past + seq]),
    };
    if (this.layout.hasPositionIds) tensors.position_ids = new ort.Tensor('int64', feeds.positionIds, [batch, seq]);
    for (let layer = 0; layer < layers; layer++) {
      tensors[pastKeyName(layer)] = new ort.Tensor('float32', feeds.pastKeys[layer]!, [batch, kvHeads, past, headDim]);
      tensors[pastValueName(layer)] = new ort.Tensor('float32', feeds.pastValues[layer]!, [batch, kvHeads, past, headDim]);
    }
    const results = await this.session.run(tensors, this.outputNames);
    for (const name of this.outputNames) this.outputs.add((results[name]!.data as Float32Array).byteLength);
    const logits = results.logits!;
    const presents = (name: (layer: number) => string) => Array.from({ length: layers }, (_, layer) => results[name(layer)]!.data as Float32Array);
    return { logits: logits.data as Float32Array, vocab: logits.dims[2]!, presentKeys: presents(presentKeyName), presentValues: presents(presentValueName) };
  }

  /** The forward of the sequences feeding one token, over the decode batch; returns what keeps its caches. */
  private async decodeForward(group: readonly SequenceStepInput[], chosen: Map<string, number>): Promise<() => void> {
    const sequences = group.map((input) => this.sequenceOf(input));
    const forward = this.batch.prepare(
      group.map((input, b) => ({ sequenceId: input.sequenceId, token: input.tokens[0]!, ...(this.batch.has(input.sequenceId) ? {} : { joining: sequences[b]!.cache }) })),
    );
    const { logits, vocab, presentKeys, presentValues } = await this.run({ ...forward, batch: forward.rows, seq: 1 });
    group.forEach((input, b) => {
      if (input.sample) chosen.set(input.sequenceId, sampleToken(lastLogits(logits, forward.rowOf[b]!, 1, vocab), input.sampling, sequences[b]!.random));
    });
    return () => {
      forward.commit(presentKeys, presentValues);
      group.forEach((input, b) => {
        delete sequences[b]!.cache;
        this.sequences.set(input.sequenceId, sequences[b]!);
      });
    };
  }

  /** One forward of prompts (or chunks of them), each from its own cache; returns what stores their caches. */
  private async prefillForward(group: readonly SequenceStepInput[], chosen: Map<string, number>): Promise<() => void> {
    const sequences = group.map((input) => this.sequenceOf(input));
    // A sequence of the decode batch fed several tokens again is fed from a copy of its row, and leaves the batch.
    const rows: BatchRow[] = group.map((input, b) => ({
      cache: this.batch.has(input.sequenceId) ? this.batch.extract(input.sequenceId) : (sequences[b]!.cache ?? emptyCache(this.layout)),
      tokens: input.tokens,
    }));
    const feeds = padBatch(rows, this.layout);
    const { logits, vocab, presentKeys, presentValues } = await this.run(feeds);
    const caches = appendPresents(rows, feeds, presentKeys, presentValues, this.layout);
    group.forEach((input, b) => {
      if (input.sample) chosen.set(input.sequenceId, sampleToken(lastLogits(logits, b, feeds.seq, vocab), input.sampling, sequences[b]!.random));
    });
    return () =>
      group.forEach((input, b) => {
        this.batch.release(input.sequenceId);
        sequences[b]!.cache = caches[b]!;
        this.sequences.set(input.sequenceId, sequences[b]!);
      });
  }

  release(sequenceIds: readonly string[]): void {
    for (const id of sequenceIds) {
      this.sequences.delete(id);
      this.batch.release(id);
    }
  }

  cacheUse(): { sequences: number; tokens: number; bytes: number } {
    const batched = this.batch.use();
    let { tokens, bytes } = batched;
    for (const { cache } of this.sequences.values()) {
      if (!cache) continue;
      tokens += cache.length;
      bytes += cacheBytes(cache);
    }
    return { sequences: this.sequences.size, tokens, bytes };
  }
}

async function main(settings: SessionSettings): Promise<void> {
  dieWithParent();
  const outputs = new YoungOutputCollector();
  let decoder: Decoder;
  try {
    const { session, provider, fallback } = await createSession(settings);
    const signature: ModelSignature = { inputs: describe(session.inputMetadata, 'input'), outputs: describe(session.outputMetadata, 'output') };
    decoder = new Decoder(session, decoderLayout(signature), outputs);
    send({ type: 'loaded', signature, executionProvider: provider, fallback });
  } catch (error) {
    send({ type: 'load-failed', message: (error as Error).message });
    return;
  }
  // One message at a time, in order: a release or a cache count never lands in the middle of a step.
  let previous = Promise.resolve();
  process.on('message', (message: ToGenerationWorker) => {
    // handle() answers a failed step itself; anything else that throws is logged, and the next message still runs.
    previous = previous.then(() => handle(decoder, outputs, message)).catch((error: unknown) => console.error(`generation worker: ${(error as Error).message}`));
  });
}

async function handle(decoder: Decoder, outputs: YoungOutputCollector, message: ToGenerationWorker): Promise<void> {
  if (message.type === 'release') decoder.release(message.sequenceIds);
  else if (message.type === 'cache-use') send({ type: 'cache-use', id: message.id, ...decoder.cacheUse() });
  else if (message.type === 'step') {
    try {
      const started = performance.now();
      const { tokens, forwards } = await decoder.step(stepInputsOf(message));
      send({ type: 'stepped', id: message.id, tokens, forwards, computeMicros: Math.round((performance.now() - started) * 1000) });
    } catch (error) {
      send({ type: 'step-failed', id: message.id, message: (error as Error).message });
    }
    // Once the step is answered: the server hears its tokens before the collection runs.
    outputs.collectIfDue();
  }
}

process.once('message', (message: ToGenerationWorker) => {
  if (message.type === 'load') void main(message.settings);
});
