import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SAMPLED_TOKEN, type SequenceStepInput } from '../../../../src/domain/generation/generation-engine.port.js';
import { GREEDY } from '../../../../src/domain/generation/sampling.js';
import { checkStepInputs } from '../../../../src/domain/generation/step-check.js';
import { DomainError, type DomainErrorCode } from '../../../../src/domain/shared/domain-error.js';

const model = { vocabSize: 10, maxPositions: 8 };
const held = new Map([['old', 6]]);
const positionsHeld = (id: string) => held.get(id) ?? 0;
const input = (sequenceId: string, tokens: number[], overrides: Partial<SequenceStepInput> = {}): SequenceStepInput => ({ sequenceId, tokens, sample: true, sampling: GREEDY, ...overrides });

function refused(inputs: SequenceStepInput[], code: DomainErrorCode, message: RegExp): void {
  assert.throws(() => checkStepInputs(inputs, model, positionsHeld), (error: unknown) => error instanceof DomainError && error.code === code && message.test(error.message));
}

describe('checkStepInputs', () => {
  it('takes a step within the vocabulary and the context, and an empty step', () => {
    checkStepInputs([input('old', [9, 0]), input('new', [1, 2, 3, 4, 5, 6, 7, 8])], model, positionsHeld);
    checkStepInputs([], model, positionsHeld);
  });

  it('refuses a sequence that would pass the context, counting what it holds', () => {
    refused([input('old', [1, 2, 3])], 'INFERENCE.INVALID_REQUEST', /sequence 'old' would hold 9 positions, more than the model's context of 8/);
    refused([input('new', new Array(9).fill(1))], 'INFERENCE.INVALID_REQUEST', /would hold 9 positions/);
  });

  it('refuses tokens outside the vocabulary, naming the token and where it is', () => {
    refused([input('a', [1, 10])], 'INFERENCE.INVALID_DATA', /sequence 'a': token 10 \(at 1\) is not an id of the model's vocabulary of 10/);
    refused([input('a', [-2])], 'INFERENCE.INVALID_DATA', /token -2 \(at 0\)/);
    refused([input('a', [1, SAMPLED_TOKEN])], 'INFERENCE.INVALID_DATA', /token -1 \(at 1\)/);
    refused([input('a', [1.5])], 'INFERENCE.INVALID_DATA', /token 1.5/);
  });

  it('takes SAMPLED_TOKEN fed alone (the token the previous step samples), counted as one position', () => {
    checkStepInputs([input('a', [SAMPLED_TOKEN]), input('old', [SAMPLED_TOKEN])], model, positionsHeld);
    assert.throws(
      () => checkStepInputs([input('full', [SAMPLED_TOKEN])], model, () => 8),
      (error: unknown) => error instanceof DomainError && /sequence 'full' would hold 9 positions/.test(error.message),
    );
  });

  it('refuses a sequence named twice, one feeding nothing, and bad sampling of a sequence that samples', () => {
    refused([input('a', [1]), input('a', [2])], 'INFERENCE.INVALID_REQUEST', /sequence 'a' appears twice in one step/);
    refused([input('a', [])], 'INFERENCE.INVALID_REQUEST', /sequence 'a' feeds no token/);
    refused([input('a', [1], { sampling: { ...GREEDY, temperature: -1 } })], 'INFERENCE.INVALID_REQUEST', /temperature -1/);
    checkStepInputs([input('a', [1], { sample: false, sampling: { ...GREEDY, temperature: -1 } })], model, positionsHeld);
  });
});
