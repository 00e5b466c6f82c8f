import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelSignature, TensorSpec } from '../../../../../src/domain/inference/tensor.js';
import { decoderLayout, kvCacheBytesPerToken } from '../../../../../src/infra/onnx/generation/decoder-layout.js';
import { readGenerativeModelFacts } from '../../../../../src/infra/onnx/generation/generative-model-files.js';

const spec = (name: string, datatype: TensorSpec['datatype'], shape: number[]): TensorSpec => ({ name, datatype, shape });

/** Optimum's layout: 2 layers, 4 KV heads of 16, vocabulary 100 (or symbolic). */
function signature({ layers = 2, heads = 4, vocab = 100, extraInputs = [] as TensorSpec[], positionIds = true } = {}): ModelSignature {
  const kv = (prefix: string) => Array.from({ length: layers }, (_, n) => ['key', 'value'].map((kind) => spec(`${prefix}.${n}.${kind}`, 'FP32', [-1, heads, -1, 16]))).flat();
  return {
    inputs: [spec('input_ids', 'INT64', [-1, -1]), spec('attention_mask', 'INT64', [-1, -1]), ...(positionIds ? [spec('position_ids', 'INT64', [-1, -1])] : []), ...kv('past_key_values'), ...extraInputs],
    outputs: [spec('logits', 'FP32', [-1, -1, vocab]), ...kv('present')],
  };
}

describe('decoderLayout', () => {
  it('reads layers, KV heads, head size and vocabulary from an Optimum signature', () => {
    const layout = decoderLayout(signature());
    assert.deepEqual(layout, { layers: 2, kvHeads: 4, headDim: 16, hasPositionIds: true, vocabSize: 100 });
    assert.equal(kvCacheBytesPerToken(layout), 2 * 4 * 16 * 2 * 4);
    assert.deepEqual(decoderLayout(signature({ vocab: -1, positionIds: false })), { layers: 2, kvHeads: 4, headDim: 16, hasPositionIds: false });
  });

  it('refuses what it cannot feed, naming it', () => {
    const noPast = signature();
    assert.throws(() => decoderLayout({ inputs: noPast.inputs.filter((s) => !s.name.startsWith('past')), outputs: noPast.outputs }), /needs the inputs 'past_key_values.0.key'/);
    assert.throws(() => decoderLayout({ inputs: noPast.inputs.filter((s) => s.name !== 'attention_mask'), outputs: noPast.outputs }), /needs the input 'attention_mask'/);
    assert.throws(() => decoderLayout({ inputs: noPast.inputs, outputs: noPast.outputs.filter((s) => s.name !== 'present.1.value') }), /needs the output 'present.1.value'/);
    assert.throws(() => decoderLayout(signature({ extraInputs: [spec('use_cache_branch', 'BOOL', [1])] })), /input 'use_cache_branch' is not one a generative model is fed/);
    assert.throws(() => decoderLayout(signature({ heads: -1 })), /its heads and head size must be fixed numbers/);
    const fp16 = signature();
    assert.throws(() => decoderLayout({ inputs: fp16.inputs.map((s) => (s.name === 'past_key_values.1.key' ? { ...s, datatype: 'FP16' } : s)), outputs: fp16.outputs }), /'past_key_values.1.key' is FP16/);
  });
});

describe('readGenerativeModelFacts', () => {
  async function facts(files: Record<string, unknown>) {
    const dir = await mkdtemp(join(tmpdir(), 'generative-facts-'));
    try {
      for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
      return await readGenerativeModelFacts(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('takes the context under each family\'s name, and the end tokens of both files', async () => {
    assert.deepEqual(await facts({ 'config.json': { n_positions: 1024, vocab_size: 50257, eos_token_id: 50256 } }), { vocabSize: 50257, maxPositions: 1024, eosTokenIds: [50256] });
    assert.deepEqual(
      await facts({ 'config.json': { max_position_embeddings: 4096, eos_token_id: 2, other: 'ignored' }, 'generation_config.json': { eos_token_id: [128001, 2] } }),
      { vocabSize: undefined, maxPositions: 4096, eosTokenIds: [128001, 2] },
    );
  });

  it('refuses a directory without config.json, without a context length, or with a malformed field', async () => {
    await assert.rejects(facts({}), /a generative model needs config.json beside model.onnx/);
    await assert.rejects(facts({ 'config.json': { vocab_size: 10 } }), /names no context length \(max_position_embeddings, n_positions or n_ctx\)/);
    await assert.rejects(facts({ 'config.json': '{' }), /config.json is not valid JSON/);
    await assert.rejects(facts({ 'config.json': { n_positions: 8 }, 'generation_config.json': { eos_token_id: 'x' } }), /generation_config.json: eos_token_id/);
  });
});
