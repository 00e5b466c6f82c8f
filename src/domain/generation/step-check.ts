import { DomainError } from '../shared/domain-error.js';
import { SAMPLED_TOKEN, type GenerativeModelInfo, type SequenceStepInput } from './generation-engine.port.js';
import { checkSamplingParams } from './sampling.js';

/**
 * Refuses a step the model cannot run, before anything of it runs, naming the sequence and what is
 * wrong: a sequence named twice or feeding no token (INFERENCE.INVALID_REQUEST), a token outside
 * the vocabulary (INFERENCE.INVALID_DATA), a sequence that would hold more positions than the
 * model's context (INFERENCE.INVALID_REQUEST), bad sampling parameters. `positionsHeld` tells how
 * many positions a sequence already holds (0 for a new one). A sequence may feed
 * SAMPLED_TOKEN alone: the token the engine sampled for it at its previous step.
 */
export function checkStepInputs(
  inputs: readonly SequenceStepInput[],
  model: Pick<GenerativeModelInfo, 'vocabSize' | 'maxPositions'>,
  positionsHeld: (sequenceId: string) => number,
): void {
  const seen = new Set<string>();
  for (const input of inputs) {
    const { sequenceId, tokens } = input;
    if (seen.has(sequenceId)) throw new DomainError('INFERENCE.INVALID_REQUEST', `sequence '${sequenceId}' appears twice in one step`);
    seen.add(sequenceId);
    if (tokens.length === 0) throw new DomainError('INFERENCE.INVALID_REQUEST', `sequence '${sequenceId}' feeds no token`);
    const feedsSampled = tokens.length === 1 && tokens[0] === SAMPLED_TOKEN;
    const bad = feedsSampled ? -1 : tokens.findIndex((token) => !Number.isInteger(token) || token < 0 || token >= model.vocabSize);
    if (bad >= 0) {
      throw new DomainError('INFERENCE.INVALID_DATA', `sequence '${sequenceId}': token ${tokens[bad]} (at ${bad}) is not an id of the model's vocabulary of ${model.vocabSize}`);
    }
    const positions = positionsHeld(sequenceId) + tokens.length;
    if (positions > model.maxPositions) {
      throw new DomainError(
        'INFERENCE.INVALID_REQUEST',
        `sequence '${sequenceId}' would hold ${positions} positions, more than the model's context of ${model.maxPositions}`,
      );
    }
    if (input.sample) checkSamplingParams(input.sampling);
  }
}
