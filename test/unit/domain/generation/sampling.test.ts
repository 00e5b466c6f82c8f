import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { SamplingParams } from '../../../../src/domain/generation/generation-engine.port.js';
import { argmax, checkSamplingParams, GREEDY, sampleToken, seededRandom } from '../../../../src/domain/generation/sampling.js';
import { DomainError } from '../../../../src/domain/shared/domain-error.js';

const params = (overrides: Partial<SamplingParams>): SamplingParams => ({ temperature: 1, topK: 0, topP: 1, seed: 1, ...overrides });

/** How often each token is drawn over `draws` samplings with one generator. */
function frequencies(logits: number[], sampling: SamplingParams, draws = 20_000): number[] {
  const random = seededRandom(sampling.seed);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampleToken(logits, sampling, random)]++;
  return counts.map((count) => count / draws);
}

describe('sampling', () => {
  it('seededRandom: the same seed gives the same numbers in [0, 1), another seed others', () => {
    const draw = (seed: number) => Array.from({ length: 100 }, seededRandom(seed));
    assert.deepEqual(draw(42), draw(42));
    assert.notDeepEqual(draw(42), draw(43));
    assert.ok(draw(42).every((x) => x >= 0 && x < 1));
  });

  it('greedy (temperature 0) takes the argmax, the first on a tie, and draws nothing', () => {
    let draws = 0;
    const random = () => (draws++, 0.5);
    assert.equal(sampleToken([0.1, 3, -1, 3], GREEDY, random), 1);
    assert.equal(argmax(Float32Array.of(-5, -2, -2)), 1);
    assert.equal(draws, 0);
  });

  it('temperature 1 draws with softmax probabilities', () => {
    const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
    const seen = frequencies(logits, params({}));
    [0.5, 0.3, 0.2].forEach((p, i) => assert.ok(Math.abs(seen[i]! - p) < 0.02, `token ${i}: ${seen[i]} vs ${p}`));
  });

  it('a low temperature sharpens the distribution, a high one flattens it', () => {
    const logits = [1, 0, 0];
    const cold = frequencies(logits, params({ temperature: 0.25 }));
    const hot = frequencies(logits, params({ temperature: 4 }));
    assert.ok(cold[0]! > 0.95, `cold: ${cold[0]}`);
    assert.ok(hot[0]! < 0.45, `hot: ${hot[0]}`);
  });

  it('top-k keeps only the k most likely tokens', () => {
    const seen = frequencies([3, 2.9, 2.8, 2.7, 0], params({ topK: 2 }));
    assert.ok(seen[0]! > 0 && seen[1]! > 0);
    assert.deepEqual(seen.slice(2), [0, 0, 0]);
  });

  it('top-p keeps the smallest set of most likely tokens reaching p', () => {
    // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.79 keeps the first two, top_p 0.81 the first three.
    const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
    const two = frequencies(logits, params({ topP: 0.79 }));
    assert.deepEqual(two.slice(2), [0, 0]);
    assert.ok(Math.abs(two[0]! - 0.5 / 0.8) < 0.02, `renormalised: ${two[0]}`);
    const three = frequencies(logits, params({ topP: 0.81 }));
    assert.ok(three[2]! > 0);
    assert.equal(three[3], 0);
  });

  it('the same seed and logits give the same tokens; the draw is used once per token', () => {
    const logits = Array.from({ length: 50 }, (_, i) => Math.sin(i));
    const run = (seed: number) => {
      const random = seededRandom(seed);
      return Array.from({ length: 30 }, () => sampleToken(logits, params({ seed, topK: 20, topP: 0.9 }), random));
    };
    assert.deepEqual(run(5), run(5));
    assert.notDeepEqual(run(5), run(6));
    let draws = 0;
    sampleToken(logits, params({ topK: 3 }), () => (draws++, 0.99));
    assert.equal(draws, 1);
  });

  it('tokens far below the most likely one are never drawn, even at the end of the draw', () => {
    assert.equal(sampleToken([0, -1000], params({}), () => 0.999999999), 0);
  });

  it('checkSamplingParams refuses what cannot be honoured, naming the field', () => {
    const refused = (overrides: Partial<SamplingParams>, message: RegExp) =>
      assert.throws(() => checkSamplingParams(params(overrides)), (error: unknown) => error instanceof DomainError && error.code === 'INFERENCE.INVALID_REQUEST' && message.test(error.message));
    refused({ temperature: -0.1 }, /temperature -0.1/);
    refused({ temperature: Number.NaN }, /temperature NaN/);
    refused({ temperature: 101 }, /temperature 101/);
    refused({ topK: 1.5 }, /top_k 1.5/);
    refused({ topK: -1 }, /top_k -1/);
    refused({ topP: 0 }, /top_p 0/);
    refused({ topP: 1.01 }, /top_p 1.01/);
    refused({ seed: 2 ** 32 }, /seed 4294967296/);
    refused({ seed: 0.5 }, /seed 0.5/);
    checkSamplingParams(GREEDY);
    checkSamplingParams(params({ temperature: 100, topK: 50_000, topP: 1, seed: 2 ** 32 - 1 }));
  });
});
