// Builds the project's ONNX models from scratch (nothing is downloaded): the
// graphs are assembled as ONNX protobuf messages with onnx-proto and encoded.
import { readFileSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import onnxProto from 'onnx-proto';
import { seededRandom } from '../src/domain/generation/sampling.js';
import { fromHalfBits } from '../src/infra/http/half-float.js';

// onnx-proto is CommonJS (`module.exports = { onnx }`), so ESM only sees a default export.
// This alias gives `onnx` both as the runtime namespace and as the namespace of its types.
import onnx = onnxProto.onnx;
const { DataType } = onnx.TensorProto;

const OPSET_VERSION = 17;
const IR_VERSION = 8;

/** A dimension is either fixed (a number) or symbolic (its dim_param name). */
type Dim = number | string;
type AttributeValue = number | number[];

function tensorInfo(name: string, elemType: onnx.TensorProto.DataType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** A graph node; every attribute used by these models is an INT or a list of INTs. */
function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, AttributeValue> = {},
): onnx.INodeProto {
  const attribute = Object.entries(attrs).map(([name, value]): onnx.IAttributeProto =>
    typeof value === 'number'
      ? { name, type: onnx.AttributeProto.AttributeType.INT, i: value }
      : { name, type: onnx.AttributeProto.AttributeType.INTS, ints: value },
  );
  return { opType, input: inputs, output: outputs, attribute, name: `${opType}_${outputs.join('_')}` };
}

/** A constant tensor as raw_data, which ONNX defines as little-endian: typed arrays are, on x86-64 and arm64. */
function initializer(name: string, values: Float32Array | BigInt64Array, dims: number[]): onnx.ITensorProto {
  const dataType = values instanceof Float32Array ? DataType.FLOAT : DataType.INT64;
  return { name, dataType, dims, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

function modelBytes(graph: onnx.IGraphProto, opset = OPSET_VERSION): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'onnx-serving/scripts/build-models',
    graph,
  }).finish();
}

async function writeModel(file: string, bytes: Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
}

/** Weights of the demo classifier: a linear layer over iris-like features (sepal/petal length and width). */
export const CLASSIFIER_PARAMETERS = {
  weights: [
    [0.45, 0.12, -0.57],
    [1.05, -0.55, -0.5],
    [-1.6, 0.2, 1.4],
    [-0.7, -0.6, 1.3],
  ],
  bias: [0.25, 2.5, -1.35],
} as const;

export function classifierModel(): Uint8Array {
  const { weights, bias } = CLASSIFIER_PARAMETERS;
  return modelBytes({
    name: 'classifier',
    input: [tensorInfo('input', DataType.FLOAT, ['batch', 4])],
    output: [
      tensorInfo('probabilities', DataType.FLOAT, ['batch', 3]),
      tensorInfo('label', DataType.INT64, ['batch']),
    ],
    initializer: [
      initializer('W', Float32Array.from(weights.flat()), [4, 3]),
      initializer('B', Float32Array.from(bias), [3]),
    ],
    node: [
      node('MatMul', ['input', 'W'], ['logits_unbiased']),
      node('Add', ['logits_unbiased', 'B'], ['logits']),
      node('Softmax', ['logits'], ['probabilities'], { axis: -1 }),
      node('ArgMax', ['probabilities'], ['label'], { axis: 1, keepdims: 0 }),
    ],
  });
}

/**
 * The demo classifier with its weights `W` stored outside the model file (ONNX external data), in
 * `location` beside it: a model file that loads only with that file next to it.
 */
export function externalDataClassifierModel(location = 'weights.bin'): Uint8Array {
  const model = onnx.ModelProto.decode(classifierModel());
  const weights = model.graph!.initializer!.find((tensor) => tensor.name === 'W')!;
  const length = weights.rawData!.length;
  weights.rawData = new Uint8Array(0);
  weights.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
  weights.externalData = [
    { key: 'location', value: location },
    { key: 'offset', value: '0' },
    { key: 'length', value: String(length) },
  ];
  return onnx.ModelProto.encode(model).finish();
}

export function multiIoModel(): Uint8Array {
  return modelBytes({
    name: 'multi_io',
    input: [
      tensorInfo('features', DataType.FLOAT, ['batch', 3]),
      tensorInfo('counts', DataType.INT64, ['batch', 2]),
      tensorInfo('mask', DataType.BOOL, ['batch', 3]),
      tensorInfo('text', DataType.STRING, ['batch', 1]),
    ],
    output: [
      tensorInfo('scaled', DataType.FLOAT, ['batch', 3]),
      tensorInfo('masked', DataType.FLOAT, ['batch', 3]),
      tensorInfo('total', DataType.INT64, ['batch', 1]),
      tensorInfo('inverted_mask', DataType.BOOL, ['batch', 3]),
      tensorInfo('text_echo', DataType.STRING, ['batch', 1]),
    ],
    initializer: [
      initializer('two', Float32Array.of(2), []),
      initializer('zero', Float32Array.of(0), []),
      // Since opset 13 ReduceSum takes its axes as an input tensor, not an attribute.
      initializer('sum_axes', BigInt64Array.of(1n), [1]),
    ],
    node: [
      node('Mul', ['features', 'two'], ['scaled']),
      node('Where', ['mask', 'features', 'zero'], ['masked']),
      node('ReduceSum', ['counts', 'sum_axes'], ['total'], { keepdims: 1 }),
      node('Not', ['mask'], ['inverted_mask']),
      node('Identity', ['text'], ['text_echo']),
    ],
  });
}

/** The server's datatype names (KServe V2) and their ONNX element types. */
const IDENTITY_TYPES: [string, onnx.TensorProto.DataType][] = [
  ['BOOL', DataType.BOOL],
  ['UINT8', DataType.UINT8],
  ['UINT16', DataType.UINT16],
  ['UINT32', DataType.UINT32],
  ['UINT64', DataType.UINT64],
  ['INT8', DataType.INT8],
  ['INT16', DataType.INT16],
  ['INT32', DataType.INT32],
  ['INT64', DataType.INT64],
  ['FP16', DataType.FLOAT16],
  ['FP32', DataType.FLOAT],
  ['FP64', DataType.DOUBLE],
  ['BYTES', DataType.STRING],
];

export function identityAllTypesModel(): Uint8Array {
  const names = IDENTITY_TYPES.map(([name, elemType]) => ({ suffix: name.toLowerCase(), elemType }));
  return modelBytes({
    name: 'identity_all_types',
    input: names.map(({ suffix, elemType }) => tensorInfo(`in_${suffix}`, elemType, ['batch', 'n'])),
    output: names.map(({ suffix, elemType }) => tensorInfo(`out_${suffix}`, elemType, ['batch', 'n'])),
    node: names.map(({ suffix }) => node('Identity', [`in_${suffix}`], [`out_${suffix}`])),
  });
}

export function staticShapeModel(): Uint8Array {
  return modelBytes({
    name: 'static_shape',
    input: [tensorInfo('x', DataType.FLOAT, [2, 3])],
    output: [tensorInfo('y', DataType.FLOAT, [2, 3])],
    initializer: [initializer('one', Float32Array.of(1), [])],
    node: [node('Add', ['x', 'one'], ['y'])],
  });
}

/**
 * 'x' FP32 [-1] passed through ('y'), beside a constant no node uses: onnxruntime loads it and
 * writes a warning to stderr ("Removing initializer 'unused'..."), what a real exported model with
 * leftover weights does. The tests of how the runtime's own log reaches the server's use it.
 */
export function unusedInitializerModel(): Uint8Array {
  return modelBytes({
    name: 'unused_initializer',
    input: [tensorInfo('x', DataType.FLOAT, ['n'])],
    output: [tensorInfo('y', DataType.FLOAT, ['n'])],
    initializer: [initializer('unused', Float32Array.of(1), [1])],
    node: [node('Identity', ['x'], ['y'])],
  });
}

/**
 * Parses decimal strings: 'text' BYTES [-1] cast to 'number' INT64 [-1], then doubled ('doubled'
 * INT64 [-1]). Like many real text models it refuses what is not a number, the empty string included,
 * so no made-up input (zeros, empty strings) can run it.
 */
export function parseIntModel(): Uint8Array {
  return modelBytes({
    name: 'parse_int',
    input: [tensorInfo('text', DataType.STRING, ['n'])],
    output: [tensorInfo('doubled', DataType.INT64, ['n'])],
    initializer: [initializer('two', BigInt64Array.of(2n), [])],
    node: [node('Cast', ['text'], ['number'], { to: DataType.INT64 }), node('Mul', ['number', 'two'], ['doubled'])],
  });
}

/**
 * A model whose output size is an input: `value` (FP32 [1]) expanded to the shape `shape` (INT64
 * [2]) names, as output `filled` (FP32, both dims symbolic). Its answer's size is known only after
 * it ran: what MAX_RESPONSE_BYTES bounds.
 */
export function expandModel(): Uint8Array {
  return modelBytes({
    name: 'expand',
    input: [tensorInfo('value', DataType.FLOAT, [1]), tensorInfo('shape', DataType.INT64, [2])],
    output: [tensorInfo('filled', DataType.FLOAT, ['rows', 'columns'])],
    node: [node('Expand', ['value', 'shape'], ['filled'])],
  });
}

/**
 * Triton's example models by datatype (`simple`, `simple_int8`, `simple_string`): the stand-ins below.
 */
export function tritonSimpleModel(datatype: 'INT32' | 'INT8' | 'BYTES' = 'INT32'): Uint8Array {
  return { INT32: simpleModel, INT8: simpleInt8Model, BYTES: simpleStringModel }[datatype]();
}

/** Defaults sized so one run takes about 2 s with one intra-op thread (measured: ~2.05 s on the dev box). */
export const HEAVY_DEFAULT_ROWS = 4096;
export const HEAVY_DEFAULT_LAYERS = 800;
const HEAVY_WIDTH = 256;
// Weights are uniform in [-0.15, 0.15]: with smaller ones (e.g. +-0.05) every layer shrinks the
// activations and after a few dozen layers the output is all zeros; at this size the activations
// neither vanish nor explode (tanh bounds them), so the output stays meaningful.
const HEAVY_WEIGHT_LIMIT = 0.15;

/** The seeded PRNG (mulberry32) the weights are drawn from, so rebuilt models are byte-identical. */
const mulberry32 = seededRandom;

/**
 * A model that is slow to compute from a tiny input: x [1,256] is expanded to
 * [rows,256] and pushed through `layers` rounds of MatMul(W) + Tanh, then averaged
 * back to [1,256]. Cost grows linearly with both rows and layers.
 */
export function heavyModel(rows: number = HEAVY_DEFAULT_ROWS, layers: number = HEAVY_DEFAULT_LAYERS): Uint8Array {
  const random = mulberry32(42);
  const weights = Float32Array.from({ length: HEAVY_WIDTH * HEAVY_WIDTH }, () => (random() - 0.5) * 2 * HEAVY_WEIGHT_LIMIT);
  const layerNodes = Array.from({ length: layers }, (_, k) => [
    node('MatMul', [`h${k}`, 'W'], [`m${k}`]),
    node('Tanh', [`m${k}`], [`h${k + 1}`]),
  ]).flat();
  return modelBytes({
    name: 'heavy',
    input: [tensorInfo('x', DataType.FLOAT, [1, HEAVY_WIDTH])],
    output: [tensorInfo('y', DataType.FLOAT, [1, HEAVY_WIDTH])],
    initializer: [
      initializer('expand_shape', BigInt64Array.of(BigInt(rows), BigInt(HEAVY_WIDTH)), [2]),
      initializer('W', weights, [HEAVY_WIDTH, HEAVY_WIDTH]),
    ],
    node: [
      node('Expand', ['x', 'expand_shape'], ['h0']),
      ...layerNodes,
      node('ReduceMean', [`h${layers}`], ['y'], { axes: [0], keepdims: 1 }),
    ],
  });
}

/**
 * A model whose run time is its input, as a generative model's `max_length` makes it: a Loop adds 1
 * to `x` (`trip_count` + `extraTurns`) times, so `y` = `x` + `trip_count` + `extraTurns`. A huge
 * count makes a run that does not end (about a microsecond per turn on the CPU), which is what the
 * runaway-run tests send; with a huge `extraTurns`, even a zero-filled warm-up input never ends.
 */
export function loopModel(extraTurns = 0): Uint8Array {
  const body: onnx.IGraphProto = {
    name: 'add_one',
    input: [tensorInfo('i', DataType.INT64, []), tensorInfo('cond_in', DataType.BOOL, []), tensorInfo('v_in', DataType.FLOAT, [1])],
    output: [tensorInfo('cond_out', DataType.BOOL, []), tensorInfo('v_out', DataType.FLOAT, [1])],
    initializer: [initializer('one', Float32Array.of(1), [1])],
    node: [node('Identity', ['cond_in'], ['cond_out']), node('Add', ['v_in', 'one'], ['v_out'])],
  };
  const loop: onnx.INodeProto = {
    opType: 'Loop',
    name: 'Loop_y',
    input: ['turns', 'keep_going', 'x'],
    output: ['y'],
    attribute: [{ name: 'body', type: onnx.AttributeProto.AttributeType.GRAPH, g: body }],
  };
  return modelBytes({
    name: 'loop',
    input: [tensorInfo('trip_count', DataType.INT64, [1]), tensorInfo('x', DataType.FLOAT, [1])],
    output: [tensorInfo('y', DataType.FLOAT, [1])],
    initializer: [
      initializer('extra_turns', BigInt64Array.of(BigInt(extraTurns)), [1]),
      { name: 'keep_going', dataType: DataType.BOOL, dims: [], rawData: Uint8Array.of(1) },
    ],
    node: [node('Add', ['trip_count', 'extra_turns'], ['turns']), loop],
  });
}

/** Layer widths of the benchmark MLP: input, two hidden layers, output. */
export const MLP_LAYER_SIZES = [512, 2048, 2048, 10] as const;
export const MLP_INPUT = 'input';
export const MLP_OUTPUT = 'logits';

/**
 * A compute-heavy model for the benchmark (not in the demo repository): an MLP 512 -> 2048 ->
 * 2048 -> 10 in FP32 with a dynamic batch dimension, each layer MatMul + Add, ReLU between layers
 * (onnxruntime's optimizer makes each layer one Gemm, with its ReLU: FusedGemm). Weights are uniform in +-sqrt(6 / fan_in) (He/Kaiming
 * uniform, so activations keep their scale through the ReLUs) and biases in +-0.05, drawn from
 * the seeded generator: rebuilt models are byte-identical. About 5.3 M weights, 21 MB.
 */
export function mlpModel(seed = 7): Uint8Array {
  const random = mulberry32(seed);
  const uniform = (length: number, limit: number): Float32Array =>
    Float32Array.from({ length }, () => (random() - 0.5) * 2 * limit);
  const layers = MLP_LAYER_SIZES.length - 1;
  const initializers: onnx.ITensorProto[] = [];
  const nodes: onnx.INodeProto[] = [];
  let x = MLP_INPUT;
  for (let k = 0; k < layers; k++) {
    const [fanIn, fanOut] = [MLP_LAYER_SIZES[k]!, MLP_LAYER_SIZES[k + 1]!];
    initializers.push(initializer(`W${k}`, uniform(fanIn * fanOut, Math.sqrt(6 / fanIn)), [fanIn, fanOut]));
    initializers.push(initializer(`B${k}`, uniform(fanOut, 0.05), [fanOut]));
    const last = k === layers - 1;
    const sum = last ? MLP_OUTPUT : `z${k}`;
    nodes.push(node('MatMul', [x, `W${k}`], [`xw${k}`]), node('Add', [`xw${k}`, `B${k}`], [sum]));
    if (!last) {
      nodes.push(node('Relu', [sum], [`h${k}`]));
      x = `h${k}`;
    }
  }
  return modelBytes({
    name: 'mlp',
    input: [tensorInfo(MLP_INPUT, DataType.FLOAT, ['batch', MLP_LAYER_SIZES[0]])],
    output: [tensorInfo(MLP_OUTPUT, DataType.FLOAT, ['batch', MLP_LAYER_SIZES[layers]!])],
    initializer: initializers,
    node: nodes,
  });
}

// ---------------------------------------------------------------------------------------------
// A generative model: a small decoder-only transformer (GPT-2's architecture) in the layout
// Hugging Face Optimum exports decoder models with past (what transformers.js and onnxruntime-genai
// feed too), with its tokenizer and configuration files beside it.
// ---------------------------------------------------------------------------------------------

/** The size of the demo generative model: GPT-2's architecture, scaled down. */
export const TINY_GPT = {
  layers: 2,
  heads: 4,
  embedding: 64,
  /** Positions one sequence may hold (GPT-2's n_positions). */
  positions: 512,
} as const;

/**
 * The tokenizer: GPT-2's byte-level BPE with no merges, i.e. one token per byte of UTF-8 (any
 * text encodes), ids 0..255 in GPT-2's byte order, then the special tokens.
 */
export const TINY_GPT_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
export const TINY_GPT_VOCAB_SIZE = 256 + TINY_GPT_SPECIAL_TOKENS.length;
/** `<|endoftext|>` (end of a document, and the model's bos) and `<|im_end|>` (end of a chat turn). */
export const TINY_GPT_EOS_IDS = [256, 258] as const;

/** GPT-2's bytes_to_unicode: the printable character that stands for each byte in a byte-level vocabulary. */
function byteLevelAlphabet(): string[] {
  const printable = (from: string, to: string) => Array.from({ length: to.charCodeAt(0) - from.charCodeAt(0) + 1 }, (_, i) => from.charCodeAt(0) + i);
  const kept = new Set([...printable('!', '~'), ...printable('¡', '¬'), ...printable('®', 'ÿ')]);
  let next = 256;
  return Array.from({ length: 256 }, (_, byte) => String.fromCharCode(kept.has(byte) ? byte : next++));
}

/** `tokenizer.json` in Hugging Face tokenizers' format (what tokenizers, transformers and Tokenizers.js read). */
export function tinyGptTokenizer(): object {
  const vocab = Object.fromEntries(byteLevelAlphabet().map((symbol, id) => [symbol, id]));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: TINY_GPT_SPECIAL_TOKENS.map((content, i) => ({
      id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
    },
  };
}

/** ChatML, as Qwen's and SmolLM's templates write it. */
export const TINY_GPT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The files of the generative model's version directory besides model.onnx, by name. */
export function tinyGptFiles(): Record<string, object> {
  const { layers, heads, embedding, positions } = TINY_GPT;
  const [endOfText, endOfTurn] = TINY_GPT_EOS_IDS;
  return {
    'tokenizer.json': tinyGptTokenizer(),
    'tokenizer_config.json': {
      tokenizer_class: 'GPT2Tokenizer',
      bos_token: '<|endoftext|>',
      eos_token: '<|endoftext|>',
      pad_token: '<|endoftext|>',
      add_bos_token: false,
      add_prefix_space: false,
      clean_up_tokenization_spaces: false,
      model_max_length: positions,
      chat_template: TINY_GPT_CHAT_TEMPLATE,
      added_tokens_decoder: Object.fromEntries(TINY_GPT_SPECIAL_TOKENS.map((content, i) => [
        String(256 + i), { content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      ])),
    },
    'config.json': {
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
      vocab_size: TINY_GPT_VOCAB_SIZE,
      n_layer: layers,
      n_head: heads,
      n_embd: embedding,
      n_inner: 4 * embedding,
      n_positions: positions,
      n_ctx: positions,
      activation_function: 'gelu',
      layer_norm_epsilon: 1e-5,
      tie_word_embeddings: false,
      bos_token_id: endOfText,
      eos_token_id: endOfText,
      use_cache: true,
    },
    'generation_config.json': { bos_token_id: endOfText, eos_token_id: [endOfText, endOfTurn], do_sample: false },
  };
}

/** The trained weights of the tiny GPT (scripts/tiny-gpt/train.py writes them; float16, little-endian). */
const TINY_GPT_WEIGHTS_FILE = fileURLToPath(new URL('../../scripts/tiny-gpt/weights.f16', import.meta.url));

/** The name and shape of each weight of the tiny GPT, in the order of its weights file (train.py's WEIGHT_ORDER). */
function tinyGptWeightShapes(): [string, number[]][] {
  const { layers, embedding: width, positions } = TINY_GPT;
  const shapes: [string, number[]][] = [['wte', [TINY_GPT_VOCAB_SIZE, width]], ['wpe', [positions, width]]];
  for (let i = 0; i < layers; i++) {
    const linear = (name: string, fanIn: number, fanOut: number): [string, number[]][] => [[`l${i}_${name}_w`, [fanIn, fanOut]], [`l${i}_${name}_b`, [fanOut]]];
    const norm = (name: string): [string, number[]][] => [[`l${i}_${name}_g`, [width]], [`l${i}_${name}_b`, [width]]];
    shapes.push(...norm('ln_1'), ...linear('attn_qkv', width, 3 * width), ...linear('attn_proj', width, width));
    shapes.push(...norm('ln_2'), ...linear('mlp_fc', width, 4 * width), ...linear('mlp_proj', 4 * width, width));
  }
  shapes.push(['ln_f_g', [width]], ['ln_f_b', [width]], ['lm_head', [width, TINY_GPT_VOCAB_SIZE]]);
  return shapes;
}

/**
 * The tiny GPT's weights as initializers: `trained`, read from its weights file (which must hold
 * exactly them); or `seeded`, drawn from the seeded generator (N(0, 0.3²) embeddings and head,
 * N(0, 1/fan_in) layers, LayerNorms at identity): the untrained model, which writes no sense and
 * ends its texts elsewhere than the trained one (the tiny GPT before it was trained: tests that
 * depend on how long its generations run keep it).
 */
function tinyGptWeights(weights: TinyGptWeights): onnx.ITensorProto[] {
  const shapes = tinyGptWeightShapes();
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  if (weights === 'seeded') {
    const random = seededRandom(TINY_GPT_SEED);
    const gaussian = (length: number, std: number) => Float32Array.from({ length }, () => std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));
    // Drawn in this order (embeddings and head first), so the seeded model stays the one it always was.
    const drawn = [...shapes.filter(([name]) => ['wte', 'wpe', 'lm_head'].includes(name)), ...shapes.filter(([name]) => !['wte', 'wpe', 'lm_head'].includes(name))];
    return drawn.map(([name, shape]) => {
      const values = ['wte', 'wpe', 'lm_head'].includes(name)
        ? gaussian(size(shape), 0.3)
        : name.includes('ln_')
          ? new Float32Array(size(shape)).fill(name.endsWith('_g') ? 1 : 0)
          : name.endsWith('_w')
            ? gaussian(size(shape), 1 / Math.sqrt(shape[0]!))
            : gaussian(size(shape), 0.02);
      return initializer(name, values, shape);
    });
  }
  const bytes = readFileSync(TINY_GPT_WEIGHTS_FILE);
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const expected = shapes.reduce((sum, [, shape]) => sum + size(shape), 0);
  if (halves.length !== expected) throw new Error(`${TINY_GPT_WEIGHTS_FILE} holds ${halves.length} weights, not the tiny GPT's ${expected}`);
  let at = 0;
  return shapes.map(([name, shape]) => {
    const values = Float32Array.from(halves.subarray(at, at + size(shape)), fromHalfBits);
    at += size(shape);
    return initializer(name, values, shape);
  });
}

/** Which weights the tiny GPT is built with: see tinyGptWeights. */
export type TinyGptWeights = 'trained' | 'seeded';
const TINY_GPT_SEED = 2024;

/**
 * The tiny GPT as ONNX, in Optimum's decoder-with-past layout (symbolic dims `batch_size`,
 * `sequence_length`, `past_sequence_length`, `total_sequence_length`):
 * - inputs `input_ids` [batch, seq] INT64, `attention_mask` [batch, past + seq] INT64 (1 for a
 *   real position, 0 for padding), `position_ids` [batch, seq] INT64,
 *   `past_key_values.N.key` / `.value` [batch, heads, past, head_dim] FP32 (past 0 at the start);
 * - outputs `logits` [batch, seq, vocab] FP32 and `present.N.key` / `.value`
 *   [batch, heads, past + seq, head_dim]: the past with this call's keys and values after it.
 * GPT-2's computation: token + learned position embeddings, pre-LayerNorm blocks of causal
 * multi-head attention and a GELU MLP (4x), a final LayerNorm, an LM head (not tied). The
 * attention mask is built in the graph from `attention_mask` and the causal order (query i of this
 * call, at absolute index past + i, sees keys 0..past + i that the mask keeps), so left-padded
 * batches compute each row as if it were alone. The trained weights are those
 * scripts/tiny-gpt/train.py learnt from a few conversations (scripts/tiny-gpt/corpus.txt): it
 * answers its chat template with sentences learnt nearly by heart.
 */
export function tinyGptModel(weights: TinyGptWeights = 'trained'): Uint8Array {
  const { layers, heads, embedding: width } = TINY_GPT;
  const headDim = width / heads;
  const vocab = TINY_GPT_VOCAB_SIZE;
  const { FLOAT, INT64, BOOL } = DataType;
  const initializers: onnx.ITensorProto[] = [
    ...tinyGptWeights(weights),
    initializer('zero_i', BigInt64Array.of(0n), []),
    initializer('one_i', BigInt64Array.of(1n), []),
    initializer('axis_0', BigInt64Array.of(0n), [1]),
    initializer('axis_1', BigInt64Array.of(1n), [1]),
    initializer('axes_1_2', BigInt64Array.of(1n, 2n), [2]),
    initializer('heads_shape', BigInt64Array.of(0n, 0n, BigInt(heads), BigInt(headDim)), [4]),
    initializer('width_shape', BigInt64Array.of(0n, 0n, BigInt(width)), [3]),
    initializer('qkv_split', BigInt64Array.of(BigInt(width), BigInt(width), BigInt(width)), [3]),
    initializer('zero_f', Float32Array.of(0), []),
    // A large finite negative rather than -inf: a fully masked row (a padding query) then has a
    // uniform softmax instead of NaNs, and exp() of it is exactly 0 beside any real score.
    initializer('masked_f', Float32Array.of(-1e9), []),
    initializer('scale', Float32Array.of(1 / Math.sqrt(headDim)), []),
    initializer('half', Float32Array.of(0.5), []),
    initializer('one_f', Float32Array.of(1), []),
    initializer('inv_sqrt2', Float32Array.of(Math.SQRT1_2), []),
  ];
  const layerNorm = (name: string, x: string, out: string) => node('LayerNormalization', [x, `${name}_g`, `${name}_b`], [out], { axis: -1 });
  const linear = (name: string, x: string, out: string) => [node('MatMul', [x, `${name}_w`], [`${out}_mm`]), node('Add', [`${out}_mm`, `${name}_b`], [out])];
  const nodes: onnx.INodeProto[] = [
    // Embeddings.
    node('Gather', ['wte', 'input_ids'], ['tok_emb'], { axis: 0 }),
    node('Gather', ['wpe', 'position_ids'], ['pos_emb'], { axis: 0 }),
    node('Add', ['tok_emb', 'pos_emb'], ['h0']),
    // The additive attention bias [batch, 1, seq, total]: 0 where a query may look, -1e9 elsewhere.
    node('Shape', ['input_ids'], ['ids_shape']),
    node('Gather', ['ids_shape', 'one_i'], ['seq_len'], { axis: 0 }),
    node('Shape', ['attention_mask'], ['mask_shape']),
    node('Gather', ['mask_shape', 'one_i'], ['total_len'], { axis: 0 }),
    node('Sub', ['total_len', 'seq_len'], ['past_len']),
    node('Range', ['past_len', 'total_len', 'one_i'], ['query_at']),
    node('Range', ['zero_i', 'total_len', 'one_i'], ['key_at']),
    node('Unsqueeze', ['query_at', 'axis_1'], ['query_col']),
    node('Unsqueeze', ['key_at', 'axis_0'], ['key_row']),
    node('LessOrEqual', ['key_row', 'query_col'], ['causal']),
    node('Cast', ['attention_mask'], ['mask_bool'], { to: BOOL }),
    node('Unsqueeze', ['mask_bool', 'axes_1_2'], ['mask_4d']),
    node('And', ['causal', 'mask_4d'], ['allowed']),
    node('Where', ['allowed', 'zero_f', 'masked_f'], ['attn_bias']),
  ];
  const pastInputs: onnx.IValueInfoProto[] = [];
  const presentOutputs: onnx.IValueInfoProto[] = [];
  let h = 'h0';
  for (let i = 0; i < layers; i++) {
    const l = (name: string) => `l${i}_${name}`;
    const [pastKey, pastValue] = [`past_key_values.${i}.key`, `past_key_values.${i}.value`];
    const [presentKey, presentValue] = [`present.${i}.key`, `present.${i}.value`];
    pastInputs.push(tensorInfo(pastKey, FLOAT, ['batch_size', heads, 'past_sequence_length', headDim]), tensorInfo(pastValue, FLOAT, ['batch_size', heads, 'past_sequence_length', headDim]));
    presentOutputs.push(tensorInfo(presentKey, FLOAT, ['batch_size', heads, 'total_sequence_length', headDim]), tensorInfo(presentValue, FLOAT, ['batch_size', heads, 'total_sequence_length', headDim]));
    const split = (x: string, out: string) => [node('Reshape', [x, 'heads_shape'], [`${out}_4d`]), node('Transpose', [`${out}_4d`], [out], { perm: [0, 2, 1, 3] })];
    nodes.push(
      layerNorm(l('ln_1'), h, l('x')),
      ...linear(l('attn_qkv'), l('x'), l('qkv')),
      node('Split', [l('qkv'), 'qkv_split'], [l('q'), l('k'), l('v')], { axis: 2 }),
      ...split(l('q'), l('q_heads')),
      ...split(l('k'), l('k_heads')),
      ...split(l('v'), l('v_heads')),
      node('Concat', [pastKey, l('k_heads')], [presentKey], { axis: 2 }),
      node('Concat', [pastValue, l('v_heads')], [presentValue], { axis: 2 }),
      node('Transpose', [presentKey], [l('k_t')], { perm: [0, 1, 3, 2] }),
      node('MatMul', [l('q_heads'), l('k_t')], [l('scores')]),
      node('Mul', [l('scores'), 'scale'], [l('scaled')]),
      node('Add', [l('scaled'), 'attn_bias'], [l('biased')]),
      node('Softmax', [l('biased')], [l('probs')], { axis: -1 }),
      node('MatMul', [l('probs'), presentValue], [l('context_heads')]),
      node('Transpose', [l('context_heads')], [l('context_4d')], { perm: [0, 2, 1, 3] }),
      node('Reshape', [l('context_4d'), 'width_shape'], [l('context')]),
      ...linear(l('attn_proj'), l('context'), l('attn_out')),
      node('Add', [h, l('attn_out')], [l('h_mid')]),
      layerNorm(l('ln_2'), l('h_mid'), l('x2')),
      ...linear(l('mlp_fc'), l('x2'), l('fc')),
      // GELU, exact: 0.5 x (1 + erf(x / sqrt 2)) (onnxruntime fuses it into one Gelu kernel).
      node('Mul', [l('fc'), 'inv_sqrt2'], [l('fc_scaled')]),
      node('Erf', [l('fc_scaled')], [l('fc_erf')]),
      node('Add', [l('fc_erf'), 'one_f'], [l('fc_erf1')]),
      node('Mul', [l('fc'), l('fc_erf1')], [l('fc_gated')]),
      node('Mul', [l('fc_gated'), 'half'], [l('gelu')]),
      ...linear(l('mlp_proj'), l('gelu'), l('mlp_out')),
      node('Add', [l('h_mid'), l('mlp_out')], [l('h_out')]),
    );
    h = l('h_out');
  }
  nodes.push(
    layerNorm('ln_f', h, 'h_final'),
    node('MatMul', ['h_final', 'lm_head'], ['logits']),
  );
  return modelBytes({
    name: 'tiny_gpt',
    input: [
      tensorInfo('input_ids', INT64, ['batch_size', 'sequence_length']),
      tensorInfo('attention_mask', INT64, ['batch_size', 'total_sequence_length']),
      tensorInfo('position_ids', INT64, ['batch_size', 'sequence_length']),
      ...pastInputs,
    ],
    output: [tensorInfo('logits', FLOAT, ['batch_size', 'sequence_length', vocab]), ...presentOutputs],
    initializer: initializers,
    node: nodes,
  });
}

export const TINY_GPT_NAME = 'tiny_gpt';

/**
 * The server's model configuration of the generative demo model (the model directory's
 * config.json). One intra-op thread: a forward of this model is too small to gain from splitting
 * its kernels, and a second thread takes the core the server's main thread needs (on the 2-core
 * box, three alternating pairs of runs gave 12-19% more output tokens/s for one sequence at a time
 * and 2-13% more at 32 streams than the default of one thread per core).
 */
export const TINY_GPT_CONFIG = {
  backend: 'onnx_generative',
  max_batch_size: 0,
  instance_group: [{ count: 1, kind: 'KIND_CPU' }],
  parameters: { intra_op_thread_count: { string_value: '1' } },
};

/** Writes one version directory of the generative model: model.onnx with its tokenizer and configuration files. */
export async function writeTinyGptVersion(versionDir: string, weights: TinyGptWeights = 'trained'): Promise<void> {
  await writeModel(path.join(versionDir, 'model.onnx'), tinyGptModel(weights));
  for (const [name, content] of Object.entries(tinyGptFiles())) {
    await writeFile(path.join(versionDir, name), `${JSON.stringify(content, null, 2)}\n`);
  }
}

/** Writes the generative model directory in Triton layout: <modelDir>/config.json and <modelDir>/1/. */
export async function writeTinyGptModel(modelDir: string, weights: TinyGptWeights = 'trained'): Promise<void> {
  await writeTinyGptVersion(path.join(modelDir, '1'), weights);
  await writeFile(path.join(modelDir, 'config.json'), `${JSON.stringify(TINY_GPT_CONFIG, null, 2)}\n`);
}

/**
 * The configuration the demo gives multi_io, to show the config file; classifier has none and is
 * served from what its ONNX file declares (Triton's auto-complete).
 */
export const MULTI_IO_CONFIG = {
  max_batch_size: 4,
  version_policy: { latest: { num_versions: 1 } },
  instance_group: [{ count: 2, kind: 'KIND_CPU' }],
  parameters: { intra_op_thread_count: { string_value: '1' } },
};

/** What {@link writeDemoRepository} did: the demo models it wrote, and those it left as they were. */
export interface DemoRepositoryWritten {
  readonly written: string[];
  readonly kept: string[];
}

/**
 * Writes the demo models in Triton layout, <dir>/<model>/1/model.onnx, plus multi_io's config.json
 * (and, with `generative`, the generative tiny_gpt with its files: see writeTinyGptModel),
 * each only if <dir>/<model> is absent: a model directory that exists (the user's own, or one
 * written before and changed since) is never touched. A model is written into a hidden directory
 * first and renamed into place, so an interrupted run leaves no half-written model (and the server
 * ignores hidden directories).
 */
export async function writeDemoRepository(dir: string, { generative = false }: { generative?: boolean } = {}): Promise<DemoRepositoryWritten> {
  const models: Record<string, (staging: string) => Promise<void>> = {
    classifier: (staging) => writeModel(path.join(staging, '1', 'model.onnx'), classifierModel()),
    multi_io: async (staging) => {
      await writeModel(path.join(staging, '1', 'model.onnx'), multiIoModel());
      await writeFile(path.join(staging, 'config.json'), `${JSON.stringify(MULTI_IO_CONFIG, null, 2)}\n`);
    },
  };
  if (generative) models[TINY_GPT_NAME] = (staging) => writeTinyGptModel(staging);
  await mkdir(dir, { recursive: true });
  const done: DemoRepositoryWritten = { written: [], kept: [] };
  for (const [name, write] of Object.entries(models)) {
    const target = path.join(dir, name);
    if (await exists(target)) {
      done.kept.push(name);
      continue;
    }
    const staging = await mkdtemp(path.join(dir, `.${name}-`));
    try {
      await chmod(staging, 0o755); // mkdtemp makes it 0700: the model directory must be readable by a server of another user
      await write(staging);
      // rename() would replace an empty directory made meanwhile; one with content makes it fail.
      await rename(staging, target);
      done.written.push(name);
    } catch (error) {
      if (!['ENOTEMPTY', 'EEXIST', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
      done.kept.push(name);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
  return done;
}

async function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
}

/** Writes the standalone models used by the tests into <dir>. */
export async function writeTestModels(dir: string): Promise<void> {
  await writeModel(path.join(dir, 'identity_all_types.onnx'), identityAllTypesModel());
  await writeModel(path.join(dir, 'static_shape.onnx'), staticShapeModel());
  await writeModel(path.join(dir, 'heavy.onnx'), heavyModel());
}

// ---------------------------------------------------------------------------------------------
// Stand-ins for the test models of NVIDIA Triton's client examples
// (triton-inference-server/client src/python/examples): same names, tensor names, datatypes,
// shapes and results as the models those programs expect, built here as ONNX. Sequence models
// (simple_sequence, simple_dyna_sequence) and decoupled ones (repeat_int32) have no stand-in:
// this server has no sequence batcher and answers one response per request.
// ---------------------------------------------------------------------------------------------

/** A Triton config.json tensor entry; `dims` exclude the batch dimension. */
function tritonTensor(name: string, dataType: string, dims: number[]): { name: string; data_type: string; dims: number[] } {
  return { name, data_type: dataType, dims };
}

/** Sum and difference of two [batch, 16] tensors: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1. */
function sumAndDifferenceGraph(name: string, elemType: onnx.TensorProto.DataType): onnx.IGraphProto {
  return {
    name,
    input: [tensorInfo('INPUT0', elemType, ['batch', 16]), tensorInfo('INPUT1', elemType, ['batch', 16])],
    output: [tensorInfo('OUTPUT0', elemType, ['batch', 16]), tensorInfo('OUTPUT1', elemType, ['batch', 16])],
    node: [node('Add', ['INPUT0', 'INPUT1'], ['OUTPUT0']), node('Sub', ['INPUT0', 'INPUT1'], ['OUTPUT1'])],
  };
}

/** Triton's `simple`: INT32 INPUT0, INPUT1 [-1, 16] (max_batch_size 8) to their sum and difference. */
export function simpleModel(): Uint8Array {
  return modelBytes(sumAndDifferenceGraph('simple', DataType.INT32));
}

/** Triton's `simple_int8`: the same in INT8 (INPUT0/INPUT1 [-1, 16] to sum and difference). */
export function simpleInt8Model(): Uint8Array {
  return modelBytes(sumAndDifferenceGraph('simple_int8', DataType.INT8));
}

/**
 * Triton's `simple_string`: BYTES INPUT0, INPUT1 [-1, 16] holding decimal integers; OUTPUT0 and
 * OUTPUT1 are their sum and difference, written as decimal strings (Cast parses and prints them).
 */
export function simpleStringModel(): Uint8Array {
  const { STRING, INT32 } = DataType;
  return modelBytes({
    name: 'simple_string',
    input: [tensorInfo('INPUT0', STRING, ['batch', 16]), tensorInfo('INPUT1', STRING, ['batch', 16])],
    output: [tensorInfo('OUTPUT0', STRING, ['batch', 16]), tensorInfo('OUTPUT1', STRING, ['batch', 16])],
    node: [
      node('Cast', ['INPUT0'], ['input0_int'], { to: INT32 }),
      node('Cast', ['INPUT1'], ['input1_int'], { to: INT32 }),
      node('Add', ['input0_int', 'input1_int'], ['sum_int']),
      node('Sub', ['input0_int', 'input1_int'], ['difference_int']),
      node('Cast', ['sum_int'], ['OUTPUT0'], { to: STRING }),
      node('Cast', ['difference_int'], ['OUTPUT1'], { to: STRING }),
    ],
  });
}

/** One-tensor identity INPUT0 -> OUTPUT0 over [batch, n]. */
function identityModel(name: string, elemType: onnx.TensorProto.DataType): Uint8Array {
  return modelBytes({
    name,
    input: [tensorInfo('INPUT0', elemType, ['batch', 'n'])],
    output: [tensorInfo('OUTPUT0', elemType, ['batch', 'n'])],
    node: [node('Identity', ['INPUT0'], ['OUTPUT0'])],
  });
}

/** Triton's `simple_identity`: BYTES INPUT0 [-1, -1] (max_batch_size 8) returned as OUTPUT0. */
export function simpleIdentityModel(): Uint8Array {
  return identityModel('simple_identity', DataType.STRING);
}

/** Triton's `custom_identity_int32` (memory_growth_test.py): INT32 INPUT0 [-1, -1] returned as OUTPUT0. */
export function customIdentityInt32Model(): Uint8Array {
  return identityModel('custom_identity_int32', DataType.INT32);
}

export const DENSENET_CLASSES = 1000;

/**
 * A stand-in for Triton's `densenet_onnx` (image_client.py, grpc_client.py): data_0 FP32
 * [3, 224, 224] (no batch dimension) to fc6_1 FP32 [1000]. It is not a trained network: each
 * class score is a fixed mix of the three channel means (seeded weights), enough for clients that
 * exercise the protocol and the image pre-processing, not for real classification.
 */
export function densenetStandInModel(): Uint8Array {
  const random = mulberry32(1000);
  const weights = Float32Array.from({ length: 3 * DENSENET_CLASSES }, () => random() - 0.5);
  return modelBytes({
    name: 'densenet_onnx',
    input: [tensorInfo('data_0', DataType.FLOAT, [3, 224, 224])],
    output: [tensorInfo('fc6_1', DataType.FLOAT, [DENSENET_CLASSES])],
    initializer: [initializer('W', weights, [3, DENSENET_CLASSES])],
    node: [
      // Until opset 18 ReduceMean takes its axes as an attribute; MatMul of [3] by [3, 1000] is [1000].
      node('ReduceMean', ['data_0'], ['channel_means'], { axes: [1, 2], keepdims: 0 }),
      node('MatMul', ['channel_means', 'W'], ['fc6_1']),
    ],
  });
}

/** The config.json of each stand-in: Triton's own configuration of that model, in JSON. */
const DENSENET_LABELS_FILE = 'densenet_labels.txt';

export const TRITON_EXAMPLE_CONFIGS: Record<string, object> = {
  simple: {
    name: 'simple', platform: 'onnxruntime_onnx', max_batch_size: 8,
    input: [tritonTensor('INPUT0', 'TYPE_INT32', [16]), tritonTensor('INPUT1', 'TYPE_INT32', [16])],
    output: [tritonTensor('OUTPUT0', 'TYPE_INT32', [16]), tritonTensor('OUTPUT1', 'TYPE_INT32', [16])],
  },
  simple_int8: {
    name: 'simple_int8', platform: 'onnxruntime_onnx', max_batch_size: 8,
    input: [tritonTensor('INPUT0', 'TYPE_INT8', [16]), tritonTensor('INPUT1', 'TYPE_INT8', [16])],
    output: [tritonTensor('OUTPUT0', 'TYPE_INT8', [16]), tritonTensor('OUTPUT1', 'TYPE_INT8', [16])],
  },
  simple_string: {
    name: 'simple_string', platform: 'onnxruntime_onnx', max_batch_size: 8,
    input: [tritonTensor('INPUT0', 'TYPE_STRING', [16]), tritonTensor('INPUT1', 'TYPE_STRING', [16])],
    output: [tritonTensor('OUTPUT0', 'TYPE_STRING', [16]), tritonTensor('OUTPUT1', 'TYPE_STRING', [16])],
  },
  simple_identity: {
    name: 'simple_identity', platform: 'onnxruntime_onnx', max_batch_size: 8,
    input: [tritonTensor('INPUT0', 'TYPE_STRING', [-1])],
    output: [tritonTensor('OUTPUT0', 'TYPE_STRING', [-1])],
  },
  custom_identity_int32: {
    name: 'custom_identity_int32', platform: 'onnxruntime_onnx', max_batch_size: 8,
    input: [tritonTensor('INPUT0', 'TYPE_INT32', [-1])],
    output: [tritonTensor('OUTPUT0', 'TYPE_INT32', [-1])],
  },
  densenet_onnx: {
    name: 'densenet_onnx', platform: 'onnxruntime_onnx', max_batch_size: 0,
    // As Triton's own densenet_onnx: the layout image_client reads, and the labels of its classes.
    input: [{ ...tritonTensor('data_0', 'TYPE_FP32', [3, 224, 224]), format: 'FORMAT_NCHW' }],
    output: [{ ...tritonTensor('fc6_1', 'TYPE_FP32', [DENSENET_CLASSES]), label_filename: DENSENET_LABELS_FILE }],
  },
};

const TRITON_EXAMPLE_MODELS: Record<string, () => Uint8Array> = {
  simple: simpleModel,
  simple_int8: simpleInt8Model,
  simple_string: simpleStringModel,
  simple_identity: simpleIdentityModel,
  custom_identity_int32: customIdentityInt32Model,
  densenet_onnx: densenetStandInModel,
};

export const TRITON_EXAMPLE_MODEL_NAMES = Object.keys(TRITON_EXAMPLE_MODELS);

/** Writes the stand-ins of Triton's example models in Triton layout, each with its config.json. */
export async function writeTritonExamplesRepository(dir: string): Promise<void> {
  for (const [name, build] of Object.entries(TRITON_EXAMPLE_MODELS)) {
    await writeModel(path.join(dir, name, '1', 'model.onnx'), build());
    await writeFile(path.join(dir, name, 'config.json'), `${JSON.stringify(TRITON_EXAMPLE_CONFIGS[name], null, 2)}\n`);
  }
  const labels = Array.from({ length: DENSENET_CLASSES }, (_, i) => `CLASS_${i}`);
  await writeFile(path.join(dir, 'densenet_onnx', DENSENET_LABELS_FILE), `${labels.join('\n')}\n`);
}

const isMainModule = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMainModule) {
  const args = process.argv.slice(2);
  const dir = path.resolve(args.find((arg) => !arg.startsWith('--')) ?? 'models');
  if (args.includes('--triton-examples')) {
    await writeTritonExamplesRepository(dir);
    console.log(`Wrote the stand-ins of Triton's example models (${TRITON_EXAMPLE_MODEL_NAMES.join(', ')}) to ${dir}`);
  } else {
    // --generative adds tiny_gpt, whose config names the onnx_generative backend.
    const { written, kept } = await writeDemoRepository(dir, { generative: args.includes('--generative') });
    if (written.length > 0) console.log(`Wrote the demo models ${written.join(', ')} to ${dir}`);
    if (kept.length > 0) console.log(`Kept ${kept.map((name) => path.join(dir, name)).join(', ')} as they are (a model directory that exists is never overwritten)`);
  }
}
