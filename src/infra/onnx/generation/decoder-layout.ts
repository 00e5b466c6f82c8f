import type { ModelSignature, TensorSpec } from '../../../domain/inference/tensor.js';

/**
 * How a decoder model exported with past (Hugging Face Optimum's layout, which transformers.js and
 * onnxruntime-genai feed too) is fed, read from its signature:
 * inputs `input_ids` [batch, seq] INT64, `attention_mask` [batch, past + seq] INT64, optionally
 * `position_ids` [batch, seq] INT64, and `past_key_values.N.key` / `.value`
 * [batch, kv_heads, past, head_dim] FP32 for each layer N; outputs `logits` [batch, seq, vocab]
 * FP32 and `present.N.key` / `.value` [batch, kv_heads, past + seq, head_dim].
 */
export interface DecoderLayout {
  readonly layers: number;
  /** Key/value heads of a layer (fewer than the attention heads in grouped-query attention). */
  readonly kvHeads: number;
  readonly headDim: number;
  /** The logits' last dimension when the file fixes it. */
  readonly vocabSize?: number;
  /** Whether the model takes `position_ids` (some exports compute positions from the mask). */
  readonly hasPositionIds: boolean;
}

export const pastKeyName = (layer: number) => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number) => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number) => `present.${layer}.key`;
export const presentValueName = (layer: number) => `present.${layer}.value`;

/** Bytes one token of one sequence holds in the cache: keys and values of every layer, FP32. */
export function kvCacheBytesPerToken(layout: DecoderLayout): number {
  return layout.layers * layout.kvHeads * layout.headDim * 2 * Float32Array.BYTES_PER_ELEMENT;
}

/** Reads the layout from a signature, or throws naming what does not fit it. */
export function decoderLayout(signature: ModelSignature): DecoderLayout {
  const inputs = new Map(signature.inputs.map((spec) => [spec.name, spec]));
  const outputs = new Map(signature.outputs.map((spec) => [spec.name, spec]));
  const expect = (specs: Map<string, TensorSpec>, kind: string, name: string, datatype: string, rank: number): TensorSpec => {
    const spec = specs.get(name);
    if (!spec) throw new Error(`a generative model needs the ${kind} '${name}' (Hugging Face Optimum's decoder layout with past)`);
    if (spec.datatype !== datatype || spec.shape.length !== rank) {
      throw new Error(`${kind} '${name}' is ${spec.datatype} [${spec.shape.join(', ')}]; a generative model's is ${datatype} of rank ${rank}`);
    }
    return spec;
  };
  expect(inputs, 'input', 'input_ids', 'INT64', 2);
  expect(inputs, 'input', 'attention_mask', 'INT64', 2);
  const hasPositionIds = inputs.has('position_ids');
  if (hasPositionIds) expect(inputs, 'input', 'position_ids', 'INT64', 2);
  const logits = expect(outputs, 'output', 'logits', 'FP32', 3);
  let layers = 0;
  while (inputs.has(pastKeyName(layers))) layers++;
  if (layers === 0) throw new Error(`a generative model needs the inputs '${pastKeyName(0)}' and '${pastValueName(0)}' (exported with past)`);
  const first = expect(inputs, 'input', pastKeyName(0), 'FP32', 4);
  const [, kvHeads, , headDim] = first.shape as [number, number, number, number];
  if (kvHeads <= 0 || headDim <= 0) {
    throw new Error(`input '${pastKeyName(0)}' has shape [${first.shape.join(', ')}]: its heads and head size must be fixed numbers`);
  }
  for (let layer = 0; layer < layers; layer++) {
    for (const [specs, kind, name] of [
      [inputs, 'input', pastKeyName(layer)],
      [inputs, 'input', pastValueName(layer)],
      [outputs, 'output', presentKeyName(layer)],
      [outputs, 'output', presentValueName(layer)],
    ] as const) {
      const spec = expect(specs, kind, name, 'FP32', 4);
      if (spec.shape[1] !== kvHeads || spec.shape[3] !== headDim) {
        throw new Error(`${kind} '${name}' has shape [${spec.shape.join(', ')}], unlike '${pastKeyName(0)}' [${first.shape.join(', ')}]`);
      }
    }
  }
  const fed = new Set(['input_ids', 'attention_mask', 'position_ids']);
  for (let layer = 0; layer < layers; layer++) fed.add(pastKeyName(layer)).add(pastValueName(layer));
  const unknown = signature.inputs.find((spec) => !fed.has(spec.name));
  if (unknown) throw new Error(`input '${unknown.name}' is not one a generative model is fed (input_ids, attention_mask, position_ids, past_key_values.N.key/value for N from 0 to ${layers - 1})`);
  const vocab = logits.shape[2]!;
  return { layers, kvHeads, headDim, hasPositionIds, ...(vocab > 0 ? { vocabSize: vocab } : {}) };
}
