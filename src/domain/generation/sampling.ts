import { DomainError } from '../shared/domain-error.js';
import type { SamplingParams } from './generation-engine.port.js';

/**
 * A small seeded pseudo-random generator (mulberry32: 32 bits of state, period 2^32), returning
 * numbers in [0, 1). Plenty for choosing tokens, and its whole state is one integer, so a
 * sequence's draws depend on its seed alone, never on the sequences it is batched with. The model
 * builder draws its weights from it too, so rebuilt models are byte-identical.
 */
export function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Greedy decoding: the parameters that always pick the most likely token. */
export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1, seed: 0 };

/** The largest temperature accepted: far past it every distribution is uniform to float precision anyway. */
export const MAX_TEMPERATURE = 100;

/**
 * Refuses (INFERENCE.INVALID_REQUEST, naming the field) parameters {@link sampleToken} cannot
 * honour: a negative or non-finite temperature, a top-k that is not a count, a top-p outside
 * (0, 1], a seed that is not a 32-bit integer.
 */
export function checkSamplingParams(params: SamplingParams): void {
  const { temperature, topK, topP, seed } = params;
  const problem =
    !Number.isFinite(temperature) || temperature < 0 || temperature > MAX_TEMPERATURE
      ? `temperature ${temperature} is not a number from 0 (greedy) to ${MAX_TEMPERATURE}`
      : !Number.isSafeInteger(topK) || topK < 0
        ? `top_k ${topK} is not a count (0 turns it off)`
        : !Number.isFinite(topP) || topP <= 0 || topP > 1
          ? `top_p ${topP} is not a number above 0 and at most 1 (1 turns it off)`
          : !Number.isInteger(seed) || seed < -(2 ** 31) || seed >= 2 ** 32
            ? `seed ${seed} is not a 32-bit integer`
            : undefined;
  if (problem) throw new DomainError('INFERENCE.INVALID_REQUEST', `sampling: ${problem}`);
}

/** The index of the largest logit; the first one on a tie. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/**
 * Chooses the next token from one position's `logits` (one per vocabulary entry): the argmax at
 * temperature 0; otherwise a draw from softmax(logits / temperature), restricted first to the
 * `topK` most likely tokens (0: all), then to the smallest set of the most likely whose
 * probabilities reach `topP` (nucleus sampling; 1: all). `random` gives the draw (the sequence's
 * seeded generator), called exactly once per sampled token. Sums run in float64 in a fixed order,
 * so equal logits and an equal draw give the same token on every machine.
 *
 * Tokens whose weight is below e^-{@link NEGLIGIBLE_LOG_WEIGHT} of the most likely one's are left
 * out before sorting: with a real vocabulary (50k entries) sorting all of them would cost
 * milliseconds per token, while together they weigh less than 1e-12 of the whole.
 */
export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, random: () => number): number {
  if (params.temperature === 0) return argmax(logits);
  const top = logits[argmax(logits)]!;
  const floor = top - NEGLIGIBLE_LOG_WEIGHT * params.temperature;
  const candidates: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i]! >= floor) candidates.push(i);
  // Most likely first; ties by index, so the order never depends on the sort's internals.
  candidates.sort((a, b) => logits[b]! - logits[a]! || a - b);
  const kept = params.topK > 0 ? Math.min(params.topK, candidates.length) : candidates.length;
  const weights = new Float64Array(kept);
  let total = 0;
  for (let r = 0; r < kept; r++) {
    weights[r] = Math.exp((logits[candidates[r]!]! - top) / params.temperature);
    total += weights[r]!;
  }
  let nucleus = kept;
  if (params.topP < 1) {
    let cumulative = 0;
    for (let r = 0; r < kept; r++) {
      cumulative += weights[r]!;
      if (cumulative >= params.topP * total) {
        nucleus = r + 1;
        break;
      }
    }
    total = 0;
    for (let r = 0; r < nucleus; r++) total += weights[r]!;
  }
  const draw = random() * total;
  let cumulative = 0;
  for (let r = 0; r < nucleus; r++) {
    cumulative += weights[r]!;
    if (draw < cumulative) return candidates[r]!;
  }
  return candidates[nucleus - 1]!;
}

/** Tokens this far below the most likely one (in logits over temperature) are never drawn: see {@link sampleToken}. */
export const NEGLIGIBLE_LOG_WEIGHT = 40;
