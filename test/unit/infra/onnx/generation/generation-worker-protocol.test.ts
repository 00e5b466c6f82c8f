import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serialize, deserialize } from 'node:v8';
import type { SequenceStepInput } from '../../../../../src/domain/generation/generation-engine.port.js';
import { stepInputsOf, stepMessage, stepOutputsOf } from '../../../../../src/infra/onnx/generation/generation-worker-protocol.js';

describe('generation worker protocol', () => {
  it('carries a step through the channel column-wise and gives back the same inputs', () => {
    const inputs: SequenceStepInput[] = [
      { sequenceId: 'tiny_gpt/1-0', tokens: [17], sample: true, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } },
      { sequenceId: 'tiny_gpt/1-1', tokens: [1, 2, 3, 258], sample: false, sampling: { temperature: 0.7, topK: 40, topP: 0.95, seed: 4_294_967_295 } },
      { sequenceId: 'tiny_gpt/1-2', tokens: [0, 5], sample: true, sampling: { temperature: 1.3, topK: 0, topP: 0.5, seed: -2_147_483_648 } },
    ];
    // Through V8's serializer, as process.send with serialization 'advanced' does.
    const received = deserialize(serialize(stepMessage(7, inputs)));
    assert.equal(received.id, 7);
    assert.deepEqual(stepInputsOf(received), inputs, 'tokens, sample flags and sampling (seeds at both ends of 32 bits) come back exactly');
  });

  it('carries an empty step', () => {
    assert.deepEqual(stepInputsOf(deserialize(serialize(stepMessage(1, [])))), []);
  });

  it('gives each input its sampled token, and none where the step sampled none (-1)', () => {
    const inputs = ['a', 'b', 'c'].map((sequenceId) => ({ sequenceId, tokens: [1], sample: sequenceId !== 'b', sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 } }));
    assert.deepEqual(stepOutputsOf(inputs, Int32Array.from([0, -1, 258])), [{ sequenceId: 'a', token: 0 }, { sequenceId: 'b' }, { sequenceId: 'c', token: 258 }]);
  });
});
