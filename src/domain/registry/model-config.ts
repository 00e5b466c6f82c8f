import { TYPED_ARRAY_OF, type Datatype } from '../shared/datatype.js';
import { DomainError } from '../shared/domain-error.js';
import { formatShape, type ModelSignature, type TensorSpec } from '../inference/tensor.js';
import type { RuntimeOptions } from '../inference/inference-engine.port.js';
import { DEFAULT_MAX_QUEUE_DELAY_MICROS, DEFAULT_QUEUE_POLICY, type QueuePolicy, type SchedulingPolicy } from '../inference/scheduling-policy.js';
import { DEFAULT_VERSION_POLICY, type VersionPolicy } from './version-policy.js';
import type { ModelBackend } from './model-backend.js';
import type { DeclaredGenerationLimits, GenerationConfig } from './generative-model.js';

/** max_batch_size given to a model whose inputs and outputs all start with a dynamic dimension. */
export const DEFAULT_MAX_BATCH_SIZE = 8;

type InstanceKind = 'KIND_AUTO' | 'KIND_CPU' | 'KIND_GPU';
type GpuAccelerator = 'tensorrt' | 'cuda';

/** A tensor as a model configuration lists it: `dims` exclude the batch dimension (Triton's convention). */
export interface ConfiguredTensor {
  readonly name: string;
  readonly datatype: Datatype;
  readonly dims: readonly number[];
  /** Outputs only: Triton's `label_filename`, a file of the model directory naming one class per line. */
  readonly labelFilename?: string;
  /** Inputs only: Triton's `format`, the image layout clients read from the config (the server does not act on it). */
  readonly format?: InputFormat;
}

/** Triton's ModelInput.Format: how an image input lays out its channels. */
export type InputFormat = 'FORMAT_NONE' | 'FORMAT_NHWC' | 'FORMAT_NCHW';
export const INPUT_FORMATS: readonly InputFormat[] = ['FORMAT_NONE', 'FORMAT_NHWC', 'FORMAT_NCHW'];

/** Triton's `dynamic_batching` section as declared; what it leaves out takes the documented defaults. */
export interface DeclaredDynamicBatching {
  readonly preferredBatchSizes?: readonly number[];
  readonly maxQueueDelayMicros?: number;
  readonly priorityLevels?: number;
  readonly defaultPriorityLevel?: number;
  readonly defaultQueuePolicy?: Partial<QueuePolicy>;
  readonly priorityQueuePolicies?: ReadonlyMap<number, Partial<QueuePolicy>>;
}

/** What a model's config file says; every field optional (schema-checked by the repository adapter). */
export interface DeclaredModelConfig {
  readonly name?: string;
  readonly platform?: string;
  /** Triton's `backend`; `onnx_generative` names a generative model (see generative-model.ts). */
  readonly backend?: string;
  /** A generative model's scheduling limits. */
  readonly generation?: DeclaredGenerationLimits;
  readonly maxBatchSize?: number;
  readonly inputs?: readonly ConfiguredTensor[];
  readonly outputs?: readonly ConfiguredTensor[];
  readonly versionPolicy?: VersionPolicy;
  readonly instanceCount?: number;
  readonly instanceKind?: InstanceKind;
  readonly gpuAccelerators?: readonly GpuAccelerator[];
  readonly intraOpThreads?: number;
  readonly interOpThreads?: number;
  readonly allowSpinning?: boolean;
  readonly dynamicBatching?: DeclaredDynamicBatching;
  readonly adaptiveQueueDelay?: boolean;
  readonly concurrency?: ConcurrencyPolicy;
  readonly modelWarmup?: readonly ModelWarmup[];
}

/**
 * Where a warm-up input's values come from (Triton's `ModelWarmup.Input.input_data_type`): zeros
 * (empty strings for BYTES), random bytes (zeros for BYTES, as in Triton), or a file of the model
 * directory's `warmup/` folder holding raw row-major data (BYTES: each element a 4-byte
 * little-endian length, then its bytes).
 */
export type WarmupData = { readonly kind: 'zero' } | { readonly kind: 'random' } | { readonly kind: 'file'; readonly file: string };

/** One input of a warm-up sample: `dims` exclude the batch dimension and are all fixed. */
export interface WarmupInput {
  readonly name: string;
  readonly datatype: Datatype;
  readonly dims: readonly number[];
  readonly data: WarmupData;
}

/**
 * Triton's `model_warmup` sample: a request run on every instance of a version before it serves.
 * `batchSize` rows (each the same data; 0 skips the sample), run `count` times (0 = once).
 */
export interface ModelWarmup {
  readonly name: string;
  readonly batchSize: number;
  readonly inputs: readonly WarmupInput[];
  readonly count: number;
}

/**
 * The most bytes one warm-up sample may hold, all its inputs and rows together (a BYTES element
 * counts 4 bytes, its length prefix): the largest request the server accepts by default
 * (MAX_REQUEST_BYTES, Triton's 64 MiB). A larger sample is a configuration error, not an allocation.
 */
export const MAX_WARMUP_SAMPLE_BYTES = 64 * 1024 * 1024;

/** How many requests a version holds at once (queued and running); what is left out takes the server's defaults. */
export interface ConcurrencyPolicy {
  /** The cap (0: none); with `adaptive`, the ceiling of the adaptive limit. */
  readonly maxInFlight?: number;
  /** A limit that follows latency (a gradient limiter) rather than a fixed cap. */
  readonly adaptive?: boolean;
}

/** The complete configuration a version is served with: the declared one, completed from the model file. */
export interface ModelConfig {
  readonly name: string;
  /** The backend's platform: the one declared, else the backend's first. */
  readonly platform: string;
  /** The backend's name (Triton's `backend`). */
  readonly backend: string;
  readonly maxBatchSize: number;
  readonly inputs: readonly ConfiguredTensor[];
  readonly outputs: readonly ConfiguredTensor[];
  readonly versionPolicy: VersionPolicy;
  readonly instanceCount: number;
  readonly instanceKind: InstanceKind;
  readonly gpuAccelerators: readonly GpuAccelerator[];
  readonly intraOpThreads?: number;
  readonly interOpThreads?: number;
  readonly allowSpinning: boolean;
  /** How requests wait and merge; batching is on whenever `maxBatchSize` > 1 (Triton's auto-complete rule). */
  readonly scheduling: SchedulingPolicy;
  readonly concurrency: ConcurrencyPolicy;
  /** Samples run on every instance before the version serves; none: the version serves once loaded. */
  readonly modelWarmup: readonly ModelWarmup[];
  /** The labels of each output with a label file (line i names class i), for the classification extension. */
  readonly labels: ReadonlyMap<string, readonly string[]>;
  /** Set for a generative model: served by the generation engine, token by token. */
  readonly generation?: GenerationConfig;
}

/**
 * Triton's auto-complete-config: fills what the declaration leaves out from the model file's own
 * signature, and refuses a declaration that contradicts it. `backend`: the one the declaration
 * chose (ModelBackends.forConfig). `labels`: the lines of each label file the declared outputs
 * name, by file name.
 */
export function completeModelConfig(
  backend: ModelBackend,
  modelName: string,
  declared: DeclaredModelConfig,
  fileSignature: ModelSignature,
  labels: ReadonlyMap<string, readonly string[]> = new Map(),
): ModelConfig {
  if (declared.name !== undefined && declared.name !== modelName) {
    throw invalid(`name '${declared.name}' does not match the model directory '${modelName}'`);
  }
  // ModelBackends.forConfig chose `backend` for this declaration; completing it for another is refused.
  if (declared.backend !== undefined && declared.backend !== backend.name) {
    throw invalid(`backend '${declared.backend}' is not served by backend '${backend.name}'`);
  }
  if (declared.platform !== undefined && !backend.platforms.includes(declared.platform)) {
    throw invalid(`platform '${declared.platform}' is not served by backend '${backend.name}', whose platforms are ${backend.platforms.map((p) => `'${p}'`).join(', ')}`);
  }
  const maxBatchSize = declared.maxBatchSize ?? (firstDimensionIsDynamic(fileSignature) ? DEFAULT_MAX_BATCH_SIZE : 0);
  if (maxBatchSize > 0) requireDynamicFirstDimension(fileSignature, maxBatchSize);
  const inputs = completeTensors('input', fileSignature.inputs, declared.inputs, maxBatchSize);
  const modelWarmup = declared.modelWarmup ?? [];
  modelWarmup.forEach((sample, index) => checkWarmupSample(sample, index, inputs, maxBatchSize));
  const outputs = completeTensors('output', fileSignature.outputs, declared.outputs, maxBatchSize);
  return {
    name: modelName,
    platform: declared.platform ?? backend.platforms[0],
    backend: backend.name,
    maxBatchSize,
    inputs,
    outputs,
    versionPolicy: declared.versionPolicy ?? DEFAULT_VERSION_POLICY,
    ...deploymentOf(declared),
    scheduling: completeScheduling(declared, maxBatchSize),
    concurrency: declared.concurrency ?? {},
    modelWarmup,
    labels: outputLabels(outputs, labels),
  };
}

/**
 * A warm-up sample must be a request the version would accept (Triton fails the load when it is
 * not): every input of the model, each with its datatype, fixed dims the configuration allows, at
 * most `max_batch_size` rows (1 without batching), and at most MAX_WARMUP_SAMPLE_BYTES in all.
 */
function checkWarmupSample(sample: ModelWarmup, index: number, inputs: readonly ConfiguredTensor[], maxBatchSize: number): void {
  const where = `model_warmup[${index}]${sample.name ? ` '${sample.name}'` : ''}`;
  const rowLimit = Math.max(maxBatchSize, 1);
  if (sample.batchSize > rowLimit) {
    throw invalid(`${where}: batch_size ${sample.batchSize} is more than ${maxBatchSize > 0 ? `max_batch_size ${maxBatchSize}` : '1, the only batch size of a model without batching (max_batch_size 0)'}`);
  }
  const byName = new Map(inputs.map((tensor) => [tensor.name, tensor]));
  let bytes = 0;
  for (const input of sample.inputs) {
    const tensor = byName.get(input.name);
    if (!tensor) throw invalid(`${where}: input '${input.name}' is not an input of the model, whose inputs are ${inputs.map((t) => `'${t.name}'`).join(', ')}`);
    if (input.datatype !== tensor.datatype) throw invalid(`${where}: input '${input.name}' is ${input.datatype}, but the model's is ${tensor.datatype}`);
    if (input.dims.some((dim) => dim < 0)) {
      throw invalid(`${where}: input '${input.name}' has dims ${formatShape(input.dims)}: a warm-up sample needs every dimension given (no -1)`);
    }
    const fits = input.dims.length === tensor.dims.length && input.dims.every((dim, axis) => tensor.dims[axis] === -1 || tensor.dims[axis] === dim);
    if (!fits) throw invalid(`${where}: input '${input.name}' has dims ${formatShape(input.dims)}, but the model's input has ${formatShape(tensor.dims)}`);
    bytes += Math.max(sample.batchSize, 1) * input.dims.reduce((product, dim) => product * dim, 1) * (input.datatype === 'BYTES' ? 4 : TYPED_ARRAY_OF[input.datatype].BYTES_PER_ELEMENT);
    if (bytes > MAX_WARMUP_SAMPLE_BYTES) {
      throw invalid(`${where}: the sample holds more than ${MAX_WARMUP_SAMPLE_BYTES} bytes (batch_size rows of every input's dims); use smaller dims or batch_size`);
    }
  }
  const missing = inputs.find((tensor) => !sample.inputs.some((input) => input.name === tensor.name));
  if (missing) throw invalid(`${where}: input '${missing.name}' is missing: a warm-up sample gives every input of the model`);
}

/** Each labelled output's labels, from the label files read for the declaration. */
function outputLabels(outputs: readonly ConfiguredTensor[], files: ReadonlyMap<string, readonly string[]>): Map<string, readonly string[]> {
  const labels = new Map<string, readonly string[]>();
  for (const output of outputs) {
    if (output.labelFilename === undefined) continue;
    const lines = files.get(output.labelFilename);
    if (lines === undefined) throw invalid(`output '${output.name}': its label file '${output.labelFilename}' was not read`);
    labels.set(output.name, lines);
  }
  return labels;
}

/** The label files a declaration names (read by the repository before the configuration is completed). */
export function labelFilesOf(declared: DeclaredModelConfig): string[] {
  return [...new Set((declared.outputs ?? []).flatMap((output) => (output.labelFilename === undefined ? [] : [output.labelFilename])))];
}

function completeScheduling(declared: DeclaredModelConfig, maxBatchSize: number): SchedulingPolicy {
  const batching = declared.dynamicBatching ?? {};
  const preferredBatchSizes = [...(batching.preferredBatchSizes ?? [])];
  const tooLarge = preferredBatchSizes.find((size) => size < 1 || size > Math.max(maxBatchSize, 1));
  if (tooLarge !== undefined) {
    throw invalid(`dynamic_batching.preferred_batch_size ${tooLarge} is not between 1 and max_batch_size ${maxBatchSize}`);
  }
  const priorityLevels = batching.priorityLevels ?? 0;
  // Triton requires a default level with priorities; ours is the last, so naming a level raises a request.
  const defaultPriorityLevel = batching.defaultPriorityLevel || priorityLevels || 0;
  if (priorityLevels > 0 && (defaultPriorityLevel < 1 || defaultPriorityLevel > priorityLevels)) {
    throw invalid(`dynamic_batching.default_priority_level ${defaultPriorityLevel} is not between 1 and priority_levels ${priorityLevels}`);
  }
  if (priorityLevels === 0 && batching.defaultPriorityLevel) {
    throw invalid(`dynamic_batching.default_priority_level ${batching.defaultPriorityLevel} needs priority_levels`);
  }
  const priorityQueuePolicies = new Map<number, QueuePolicy>();
  for (const [level, policy] of batching.priorityQueuePolicies ?? []) {
    if (level < 1 || level > priorityLevels) {
      throw invalid(`dynamic_batching.priority_queue_policy names level ${level}, but priority_levels is ${priorityLevels}`);
    }
    priorityQueuePolicies.set(level, { ...DEFAULT_QUEUE_POLICY, ...policy });
  }
  return {
    batching: maxBatchSize > 1,
    maxBatchSize,
    preferredBatchSizes,
    maxQueueDelayMicros: batching.maxQueueDelayMicros ?? DEFAULT_MAX_QUEUE_DELAY_MICROS,
    adaptiveQueueDelay: declared.adaptiveQueueDelay ?? false,
    priorityLevels,
    defaultPriorityLevel,
    defaultQueuePolicy: { ...DEFAULT_QUEUE_POLICY, ...batching.defaultQueuePolicy },
    priorityQueuePolicies,
  };
}

type Deployment = Pick<ModelConfig, 'instanceCount' | 'instanceKind' | 'gpuAccelerators' | 'intraOpThreads' | 'interOpThreads' | 'allowSpinning'>;

/** How the runtime hosts a model: known before the model file is opened, unlike the rest of the config. */
function deploymentOf(declared: DeclaredModelConfig): Deployment {
  return {
    instanceCount: declared.instanceCount ?? 1,
    instanceKind: declared.instanceKind ?? 'KIND_AUTO',
    gpuAccelerators: declared.gpuAccelerators ?? [],
    intraOpThreads: declared.intraOpThreads,
    interOpThreads: declared.interOpThreads,
    allowSpinning: declared.allowSpinning ?? false,
  };
}

export function runtimeOptionsOf(declared: DeclaredModelConfig): RuntimeOptions {
  const deployment = deploymentOf(declared);
  return {
    instanceCount: deployment.instanceCount,
    executionProviders: executionProvidersFor(deployment),
    intraOpThreads: deployment.intraOpThreads,
    interOpThreads: deployment.interOpThreads,
    allowSpinning: deployment.allowSpinning,
  };
}

/** The signature clients see: configured dims, with `-1` in front for the batch dimension. */
export function servedSignature(config: ModelConfig): ModelSignature {
  const toSpec = (tensor: ConfiguredTensor): TensorSpec => ({
    name: tensor.name,
    datatype: tensor.datatype,
    shape: config.maxBatchSize > 0 ? [-1, ...tensor.dims] : [...tensor.dims],
  });
  return { inputs: config.inputs.map(toSpec), outputs: config.outputs.map(toSpec) };
}

/** Execution providers to try, best first; the runtime adapter falls back to CPU. */
function executionProvidersFor(config: Pick<ModelConfig, 'instanceKind' | 'gpuAccelerators'>): string[] {
  if (config.instanceKind === 'KIND_CPU') return ['cpu'];
  const gpu = config.gpuAccelerators.includes('tensorrt') ? ['tensorrt', 'cuda'] : ['cuda'];
  return [...gpu, 'cpu'];
}

function firstDimensionIsDynamic(signature: ModelSignature): boolean {
  const all = [...signature.inputs, ...signature.outputs];
  return all.length > 0 && all.every((spec) => spec.shape.length > 0 && spec.shape[0] === -1);
}

function requireDynamicFirstDimension(signature: ModelSignature, maxBatchSize: number): void {
  const fixed = [...signature.inputs, ...signature.outputs].find((spec) => spec.shape.length === 0 || spec.shape[0] !== -1);
  if (fixed) {
    throw invalid(
      `max_batch_size ${maxBatchSize} needs a dynamic first dimension on every input and output, but '${fixed.name}' has shape ${formatShape(fixed.shape)}`,
    );
  }
}

function completeTensors(
  kind: 'input' | 'output',
  fromFile: readonly TensorSpec[],
  declared: readonly ConfiguredTensor[] | undefined,
  maxBatchSize: number,
): ConfiguredTensor[] {
  const fileDims = (spec: TensorSpec) => (maxBatchSize > 0 ? spec.shape.slice(1) : [...spec.shape]);
  const byName = new Map(fromFile.map((spec) => [spec.name, spec]));
  for (const tensor of declared ?? []) {
    const spec = byName.get(tensor.name);
    if (!spec) {
      throw invalid(`${kind} '${tensor.name}' is not in the model file, whose ${kind}s are ${fromFile.map((s) => `'${s.name}'`).join(', ')}`);
    }
    if (tensor.datatype !== spec.datatype) {
      throw invalid(`${kind} '${tensor.name}' is declared ${tensor.datatype} but the model file has ${spec.datatype}`);
    }
    const dims = fileDims(spec);
    const compatible = tensor.dims.length === dims.length && tensor.dims.every((dim, axis) => dims[axis] === -1 || dims[axis] === dim);
    if (!compatible) {
      throw invalid(`${kind} '${tensor.name}' is declared with dims ${formatShape(tensor.dims)} but the model file has ${formatShape(dims)}`);
    }
  }
  const declaredByName = new Map((declared ?? []).map((tensor) => [tensor.name, tensor]));
  return fromFile.map((spec) => declaredByName.get(spec.name) ?? { name: spec.name, datatype: spec.datatype, dims: fileDims(spec) });
}

function invalid(message: string): DomainError {
  return new DomainError('REGISTRY.INVALID_CONFIG', message);
}
