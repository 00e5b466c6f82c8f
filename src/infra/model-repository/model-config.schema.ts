import { z } from 'zod';
import type { Datatype } from '../../domain/shared/datatype.js';
import type { QueuePolicy } from '../../domain/inference/scheduling-policy.js';
import { INPUT_FORMATS, type ConcurrencyPolicy, type DeclaredDynamicBatching, type DeclaredModelConfig, type InputFormat, type ModelConfig, type ModelWarmup, type WarmupData, type WarmupInput } from '../../domain/registry/model-config.js';
import type { VersionPolicy } from '../../domain/registry/version-policy.js';
import { schemaErrorMessage } from '../validation/schema-error-message.js';
import type { DeclaredGenerationLimits } from '../../domain/registry/generative-model.js';

/**
 * The schema of `config.json`: Triton's model configuration in its JSON form (the field names of
 * model_config.proto), limited to the fields this server acts on. Unknown fields are refused so a
 * typo never silently does nothing.
 */
const TRITON_DATATYPES: Record<string, Datatype> = {
  TYPE_BOOL: 'BOOL', TYPE_UINT8: 'UINT8', TYPE_UINT16: 'UINT16', TYPE_UINT32: 'UINT32', TYPE_UINT64: 'UINT64',
  TYPE_INT8: 'INT8', TYPE_INT16: 'INT16', TYPE_INT32: 'INT32', TYPE_INT64: 'INT64',
  TYPE_FP16: 'FP16', TYPE_FP32: 'FP32', TYPE_FP64: 'FP64', TYPE_STRING: 'BYTES',
};

/**
 * An integer field in protobuf's JSON form: a JSON number, or a decimal string, which protobuf's JSON
 * printers write for 64-bit fields and its parsers take for any integer field (Triton's own examples
 * send `{"max_batch_size": "16"}`).
 */
function integer(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  return z.preprocess(
    (value) => (typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value),
    z
      .number({ error: (issue) => (issue.code === 'invalid_type' ? 'must be an integer (a JSON number or a decimal string)' : undefined) })
      .int({ error: 'must be an integer (a JSON number or a decimal string)' })
      .min(min)
      .max(max),
  );
}

/** An enum field in protobuf's JSON form: the value's name, or its number (`byNumber[n]`), as protobuf's parsers take both. */
function protoEnum<const A extends string>(byNumber: readonly string[], accepted: readonly [A, ...A[]]) {
  return z.preprocess((value) => (typeof value === 'number' && Number.isInteger(value) ? (byNumber[value] ?? value) : value), z.enum(accepted));
}

const INT32_MAX = 2 ** 31 - 1;
const UINT32_MAX = 2 ** 32 - 1;
const positiveInt = integer(1);

/** DataType's names by number, as model_config.proto numbers them. */
const DATA_TYPE_NUMBERS = ['TYPE_INVALID', 'TYPE_BOOL', 'TYPE_UINT8', 'TYPE_UINT16', 'TYPE_UINT32', 'TYPE_UINT64', 'TYPE_INT8', 'TYPE_INT16', 'TYPE_INT32', 'TYPE_INT64', 'TYPE_FP16', 'TYPE_FP32', 'TYPE_FP64', 'TYPE_STRING', 'TYPE_BF16'];

const tensorSchema = z.strictObject({
  name: z.string().min(1),
  data_type: protoEnum(DATA_TYPE_NUMBERS, Object.keys(TRITON_DATATYPES) as [string, ...string[]]),
  // Protobuf's JSON form leaves out an empty list (a scalar, or only the batch dimension).
  dims: z.array(integer(-1)).max(64, 'must have at most 64 dimensions').default([]),
});

// Triton's ModelInput.Format, by name or number: what image clients read to lay out their pixels.
const inputSchema = tensorSchema.extend({
  format: protoEnum(INPUT_FORMATS, INPUT_FORMATS as readonly [InputFormat, ...InputFormat[]]).optional(),
});

const outputSchema = tensorSchema.extend({
  label_filename: z.string().min(1).optional(),
});

/** `version_policy`, as config.json has it (and the admin API shows it). */
export const versionPolicySchema = z.union([
  z.strictObject({ latest: z.strictObject({ num_versions: integer(1, UINT32_MAX) }) }),
  z.strictObject({ all: z.strictObject({}) }),
  z.strictObject({ specific: z.strictObject({ versions: z.array(positiveInt).min(1).max(1024, 'must list at most 1024 versions') }) }),
]);

const stringParameter = z.strictObject({ string_value: z.string() });

const micros = integer(0);

const queuePolicySchema = z.strictObject({
  timeout_action: protoEnum(['REJECT', 'DELAY'], ['REJECT', 'DELAY']).optional(),
  default_timeout_microseconds: micros.optional(),
  allow_timeout_override: z.boolean().optional(),
  max_queue_size: integer(0, UINT32_MAX).optional(),
});

const dynamicBatchingSchema = z.strictObject({
  preferred_batch_size: z.array(integer(1, INT32_MAX)).max(64, 'must list at most 64 sizes').optional(),
  max_queue_delay_microseconds: micros.optional(),
  priority_levels: integer(0, 1000).optional(),
  default_priority_level: integer(0, UINT32_MAX).optional(),
  default_queue_policy: queuePolicySchema.optional(),
  // Keys are checked in toDynamicBatching: zod reports a bad record key without its message.
  priority_queue_policy: z.record(z.string(), queuePolicySchema).refine((policies) => Object.keys(policies).length <= 1000, 'must have at most 1000 levels').optional(),
});

const uint32 = z.number().int().min(0).max(0xffffffff);

/** Triton's `ModelWarmup.Input`: exactly one of the three data fields (checked in toWarmupInput). */
const warmupInputSchema = z.strictObject({
  data_type: z.enum(Object.keys(TRITON_DATATYPES) as [string, ...string[]]),
  dims: z.array(z.number().int()),
  zero_data: z.boolean().optional(),
  random_data: z.boolean().optional(),
  input_data_file: z.string().optional(),
});

const modelWarmupSchema = z.strictObject({
  name: z.string().optional(),
  batch_size: uint32.optional(),
  // Keys are input names; checked against the model's inputs when it loads.
  inputs: z.record(z.string().min(1), warmupInputSchema).optional(),
  count: uint32.optional(),
});

const modelConfigSchema = z.strictObject({
  name: z.string().optional(),
  platform: z.string().optional(),
  // Which backends are served, and with which platforms, the backend registry checks (ModelBackends).
  backend: z.string().min(1).optional(),
  max_batch_size: integer(0, INT32_MAX).optional(),
  input: z.array(inputSchema).max(1024, 'must list at most 1024 tensors').optional(),
  output: z.array(outputSchema).max(1024, 'must list at most 1024 tensors').optional(),
  version_policy: versionPolicySchema.optional(),
  instance_group: z
    .array(
      z.strictObject({
        count: integer(1, 64).optional(),
        kind: protoEnum(['KIND_AUTO', 'KIND_GPU', 'KIND_CPU', 'KIND_MODEL'], ['KIND_AUTO', 'KIND_CPU', 'KIND_GPU']).optional(),
        gpus: z.array(integer(0, INT32_MAX)).max(64, 'must list at most 64 GPUs').optional(),
      }),
    )
    .max(1, 'only one instance_group is supported')
    .optional(),
  optimization: z
    .strictObject({
      execution_accelerators: z
        .strictObject({
          gpu_execution_accelerator: z.array(z.strictObject({ name: z.enum(['tensorrt', 'cuda']) })).max(2, 'must list at most 2 accelerators').optional(),
        })
        .optional(),
    })
    .optional(),
  parameters: z
    .strictObject({
      intra_op_thread_count: stringParameter.optional(),
      inter_op_thread_count: stringParameter.optional(),
      allow_spinning: stringParameter.optional(),
      adaptive_queue_delay: stringParameter.optional(),
      max_inflight_requests: stringParameter.optional(),
      adaptive_concurrency: stringParameter.optional(),
      // A generative model's scheduling limits (backend onnx_generative).
      max_num_seqs: stringParameter.optional(),
      max_model_len: stringParameter.optional(),
      kv_cache_bytes: stringParameter.optional(),
      max_prefill_tokens_per_step: stringParameter.optional(),
      stream_buffer_tokens: stringParameter.optional(),
      overlap_steps: stringParameter.optional(),
    })
    .optional(),
  dynamic_batching: dynamicBatchingSchema.optional(),
  model_warmup: z.array(modelWarmupSchema).max(64, 'at most 64 warm-up samples').optional(),
});

export type ModelConfigFile = z.infer<typeof modelConfigSchema>;

/** Parses a config file's text; throws an Error whose message names the offending field. */
export function parseModelConfig(text: string): DeclaredModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`config.json is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = modelConfigSchema.safeParse(json);
  if (!parsed.success) {
    throw new Error(`config.json: ${schemaErrorMessage(parsed.error)}`);
  }
  return toDeclared(parsed.data);
}

function toDeclared(file: ModelConfigFile): DeclaredModelConfig {
  const tensors = (list: ModelConfigFile['input']) =>
    list?.map((t) => ({ name: t.name, datatype: TRITON_DATATYPES[t.data_type], dims: t.dims, ...(t.format === undefined ? {} : { format: t.format as InputFormat }) }));
  const outputs = file.output?.map((t) => ({
    name: t.name,
    datatype: TRITON_DATATYPES[t.data_type],
    dims: t.dims,
    ...(t.label_filename === undefined ? {} : { labelFilename: t.label_filename }),
  }));
  const group = file.instance_group?.[0];
  const params = file.parameters;
  return {
    name: file.name,
    platform: file.platform,
    backend: file.backend,
    generation: generationLimitsOf(params),
    maxBatchSize: file.max_batch_size,
    inputs: tensors(file.input),
    outputs,
    versionPolicy: file.version_policy && toVersionPolicy(file.version_policy),
    instanceCount: group?.count,
    instanceKind: group?.kind,
    gpuAccelerators: file.optimization?.execution_accelerators?.gpu_execution_accelerator?.map((a) => a.name),
    intraOpThreads: threadCount(params?.intra_op_thread_count?.string_value, 'intra_op_thread_count'),
    interOpThreads: threadCount(params?.inter_op_thread_count?.string_value, 'inter_op_thread_count'),
    allowSpinning: flag(params?.allow_spinning?.string_value, 'allow_spinning'),
    adaptiveQueueDelay: flag(params?.adaptive_queue_delay?.string_value, 'adaptive_queue_delay'),
    dynamicBatching: file.dynamic_batching && toDynamicBatching(file.dynamic_batching),
    concurrency: concurrencyOf(params),
    modelWarmup: file.model_warmup?.map((sample, index) => toWarmup(sample, index)),
  };
}

function toWarmup(sample: z.infer<typeof modelWarmupSchema>, index: number): ModelWarmup {
  return {
    name: sample.name ?? '',
    batchSize: sample.batch_size ?? 0,
    inputs: Object.entries(sample.inputs ?? {}).map(([name, input]) => toWarmupInput(name, input, `model_warmup.${index}.inputs.${name}`)),
    count: sample.count ?? 0,
  };
}

function toWarmupInput(name: string, input: z.infer<typeof warmupInputSchema>, where: string): WarmupInput {
  const given = (['zero_data', 'random_data', 'input_data_file'] as const).filter((field) => input[field] !== undefined);
  if (given.length !== 1) {
    throw new Error(`config.json: ${where}: give exactly one of zero_data, random_data, input_data_file${given.length > 1 ? ` (not ${given.join(' and ')})` : ''}`);
  }
  const file = input.input_data_file;
  const data: WarmupData = file !== undefined ? { kind: 'file', file: warmupFile(file, where) } : input.zero_data !== undefined ? { kind: 'zero' } : { kind: 'random' };
  return { name, datatype: TRITON_DATATYPES[input.data_type], dims: input.dims, data };
}

/** A file of the model directory's `warmup/` folder (Triton's place for them): a relative path that stays inside it. */
function warmupFile(path: string, where: string): string {
  const segments = path.split('/');
  const bad = path.length === 0 || path.includes('\0') || path.includes('\\') || segments.some((s) => s === '' || s === '.' || s === '..');
  if (bad) {
    throw new Error(`config.json: ${where}.input_data_file: '${path}' is not a file of the model's warmup/ folder (a relative path without '.', '..', empty segments or backslashes)`);
  }
  return path;
}

type QueuePolicyFile = z.infer<typeof queuePolicySchema>;

function toDynamicBatching(section: z.infer<typeof dynamicBatchingSchema>): DeclaredDynamicBatching {
  const toPolicy = (policy: QueuePolicyFile): Partial<QueuePolicy> =>
    withoutUndefined({
      timeoutAction: policy.timeout_action,
      defaultTimeoutMicros: policy.default_timeout_microseconds,
      allowTimeoutOverride: policy.allow_timeout_override,
      maxQueueSize: policy.max_queue_size,
    });
  return {
    preferredBatchSizes: section.preferred_batch_size,
    maxQueueDelayMicros: section.max_queue_delay_microseconds,
    priorityLevels: section.priority_levels,
    defaultPriorityLevel: section.default_priority_level,
    defaultQueuePolicy: section.default_queue_policy && toPolicy(section.default_queue_policy),
    priorityQueuePolicies: section.priority_queue_policy && new Map(Object.entries(section.priority_queue_policy).map(([level, policy]) => [priorityLevel(level), toPolicy(policy)])),
  };
}

function priorityLevel(key: string): number {
  if (!/^[1-9]\d{0,8}$/.test(key)) {
    throw new Error(`config.json: dynamic_batching.priority_queue_policy: '${key}' is not a priority level (a positive integer)`);
  }
  return Number(key);
}

/** Spreading `{key: undefined}` over a default would erase the default. */
function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function toVersionPolicy(policy: z.infer<typeof versionPolicySchema>): VersionPolicy {
  if ('latest' in policy) return { kind: 'latest', numVersions: policy.latest.num_versions };
  if ('specific' in policy) return { kind: 'specific', versions: policy.specific.versions };
  return { kind: 'all' };
}

function threadCount(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1 || count > 256) {
    throw new Error(`config.json: parameters.${field}: '${value}' is not a thread count from 1 to 256`);
  }
  return count;
}

function generationLimitsOf(params: ModelConfigFile['parameters']): DeclaredGenerationLimits | undefined {
  const count = (field: 'max_num_seqs' | 'max_model_len' | 'kv_cache_bytes' | 'max_prefill_tokens_per_step' | 'stream_buffer_tokens', min: number): number | undefined => {
    const value = params?.[field]?.string_value;
    if (value === undefined) return undefined;
    if (!/^\d{1,15}$/.test(value) || Number(value) < min) throw new Error(`config.json: parameters.${field}: '${value}' is not a whole number of at least ${min}`);
    return Number(value);
  };
  const limits = {
    maxNumSeqs: count('max_num_seqs', 1),
    maxModelLen: count('max_model_len', 2),
    kvCacheBytes: count('kv_cache_bytes', 1),
    maxPrefillTokensPerStep: count('max_prefill_tokens_per_step', 0),
    streamBufferTokens: count('stream_buffer_tokens', 1),
    overlapSteps: flag(params?.overlap_steps?.string_value, 'overlap_steps'),
  };
  return Object.values(limits).some((value) => value !== undefined) ? limits : undefined;
}

function concurrencyOf(params: ModelConfigFile['parameters']): ConcurrencyPolicy | undefined {
  const maxInFlight = inflightCount(params?.max_inflight_requests?.string_value);
  const adaptive = flag(params?.adaptive_concurrency?.string_value, 'adaptive_concurrency');
  return maxInFlight === undefined && adaptive === undefined ? undefined : withoutUndefined({ maxInFlight, adaptive });
}

function inflightCount(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,7}$/.test(value)) throw new Error(`config.json: parameters.max_inflight_requests: '${value}' is not a count from 0 (no cap) to 9999999`);
  return Number(value);
}

function flag(value: string | undefined, field: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  throw new Error(`config.json: parameters.${field}: '${value}' is not one of 0, 1, true, false`);
}

const TRITON_TYPE_OF_DATATYPE = Object.fromEntries(Object.entries(TRITON_DATATYPES).map(([triton, datatype]) => [datatype, triton]));

/** A complete configuration in the same JSON form as `config.json` (what `GET /v2/models/{m}/config` answers). */
export function toConfigFile(config: ModelConfig): ModelConfigFile {
  const tensors = (list: ModelConfig['inputs']) =>
    list.map((t) => ({ name: t.name, data_type: TRITON_TYPE_OF_DATATYPE[t.datatype], ...(t.format === undefined ? {} : { format: t.format }), dims: [...t.dims] }));
  const policy = config.versionPolicy;
  const parameters: NonNullable<ModelConfigFile['parameters']> = { allow_spinning: { string_value: config.allowSpinning ? '1' : '0' } };
  if (config.intraOpThreads !== undefined) parameters.intra_op_thread_count = { string_value: String(config.intraOpThreads) };
  if (config.interOpThreads !== undefined) parameters.inter_op_thread_count = { string_value: String(config.interOpThreads) };
  const scheduling = config.scheduling;
  parameters.adaptive_queue_delay = { string_value: scheduling.adaptiveQueueDelay ? '1' : '0' };
  if (config.concurrency.maxInFlight !== undefined) parameters.max_inflight_requests = { string_value: String(config.concurrency.maxInFlight) };
  if (config.generation) {
    const { maxNumSeqs, maxModelLen, kvCacheBytes, maxPrefillTokensPerStep, streamBufferTokens, overlapSteps } = config.generation;
    Object.assign(parameters, {
      max_num_seqs: { string_value: String(maxNumSeqs) },
      max_model_len: { string_value: String(maxModelLen) },
      kv_cache_bytes: { string_value: String(kvCacheBytes) },
      max_prefill_tokens_per_step: { string_value: String(maxPrefillTokensPerStep) },
      stream_buffer_tokens: { string_value: String(streamBufferTokens) },
      overlap_steps: { string_value: overlapSteps ? '1' : '0' },
    });
  }
  if (config.concurrency.adaptive !== undefined) parameters.adaptive_concurrency = { string_value: config.concurrency.adaptive ? '1' : '0' };
  const toPolicyFile = (policy: QueuePolicy) => ({
    timeout_action: policy.timeoutAction,
    default_timeout_microseconds: policy.defaultTimeoutMicros,
    allow_timeout_override: policy.allowTimeoutOverride,
    max_queue_size: policy.maxQueueSize,
  });
  const toWarmupFile = (sample: ModelWarmup) => ({
    name: sample.name,
    batch_size: sample.batchSize,
    inputs: Object.fromEntries(
      sample.inputs.map((input) => [
        input.name,
        {
          data_type: TRITON_TYPE_OF_DATATYPE[input.datatype],
          dims: [...input.dims],
          ...(input.data.kind === 'file' ? { input_data_file: input.data.file } : input.data.kind === 'zero' ? { zero_data: true } : { random_data: true }),
        },
      ]),
    ),
    count: sample.count,
  });
  return {
    name: config.name,
    platform: config.platform,
    backend: config.backend,
    max_batch_size: config.maxBatchSize,
    input: tensors(config.inputs),
    output: config.outputs.map((t) => ({
      name: t.name,
      data_type: TRITON_TYPE_OF_DATATYPE[t.datatype],
      dims: [...t.dims],
      ...(t.labelFilename === undefined ? {} : { label_filename: t.labelFilename }),
    })),
    version_policy:
      policy.kind === 'latest' ? { latest: { num_versions: policy.numVersions } } : policy.kind === 'all' ? { all: {} } : { specific: { versions: [...policy.versions] } },
    instance_group: [{ count: config.instanceCount, kind: config.instanceKind }],
    optimization: { execution_accelerators: { gpu_execution_accelerator: config.gpuAccelerators.map((name) => ({ name })) } },
    parameters,
    dynamic_batching: {
      preferred_batch_size: [...scheduling.preferredBatchSizes],
      max_queue_delay_microseconds: scheduling.maxQueueDelayMicros,
      priority_levels: scheduling.priorityLevels,
      default_priority_level: scheduling.defaultPriorityLevel,
      default_queue_policy: toPolicyFile(scheduling.defaultQueuePolicy),
      priority_queue_policy: Object.fromEntries([...scheduling.priorityQueuePolicies].map(([level, policy]) => [String(level), toPolicyFile(policy)])),
    },
    model_warmup: config.modelWarmup.map(toWarmupFile),
  };
}
