import { z } from 'zod';
import type { ModelVersionState } from '../../../domain/registry/model-version.js';
import { DATATYPES } from '../../../domain/shared/datatype.js';
import { versionPolicySchema } from '../../../infra/model-repository/model-config.schema.js';

/*
 * The bodies of the registry's admin API (/admin/models, and Triton's /v2/repository), described
 * once: the controllers parse requests with them, the mapper's answers have their types, and
 * GET /admin/openapi.json is generated from them.
 */

// ---- Requests ----

export const unloadVersionRequest = z.strictObject({
  force: z.boolean().optional().describe('Unload even the default or the only READY version. Default false.'),
});

export const defaultVersionRequest = z.strictObject({
  version: z
    .union([z.string(), z.number().int()])
    .transform(String)
    .describe('A version of the model in the repository (a positive integer), as a string or an integer.'),
});

const repositoryParameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

export const repositoryIndexRequest = z.strictObject({
  ready: z.boolean().optional().describe('Only the READY versions. Default false.'),
});

export const repositoryLoadRequest = z.strictObject({
  parameters: repositoryParameters
    .optional()
    .describe('Only `config` is supported: the model configuration, as the text of a config.json (a string). File parameters are not: uploads go to PUT /admin/models/{model}/versions/{version}.'),
});

export const repositoryUnloadRequest = z.strictObject({
  parameters: repositoryParameters.optional().describe("Accepted and ignored (such as Triton's `unload_dependents`)."),
});

// ---- Responses ----

const SHA256 = /^[0-9a-f]{64}$/;
const MODEL_VERSION_STATES = ['UNKNOWN', 'LOADING', 'READY', 'UNLOADING', 'UNAVAILABLE'] as const satisfies readonly ModelVersionState[];

export const modelVersionState = z.enum(MODEL_VERSION_STATES);

export const tensorSpecView = z.strictObject({
  name: z.string(),
  datatype: z.enum(DATATYPES),
  shape: z.array(z.number().int().min(-1)).describe('-1: a variable dimension (the first one is the batch when the model batches).'),
});

export const versionPolicyView = versionPolicySchema.describe(
  "Which versions of the model are served (Triton's version_policy, as in config.json), from the configuration of the version that serves.",
);

export const modelVersionView = z.strictObject({
  version: z.string(),
  state: modelVersionState,
  reason: z.string().describe('Why it is not READY (e.g. the load error, or "unloaded"); empty when there is nothing to say.'),
  sha256: z.string().regex(SHA256).nullable().describe('The sha256 of the model file it was last loaded from.'),
  loaded_at: z.string().meta({ format: 'date-time' }).nullable().describe('When it last became READY.'),
  execution_provider: z.string().nullable().describe('The execution provider it runs on while loaded.'),
  inputs: z.array(tensorSpecView).nullable().describe('The inputs it serves while loaded.'),
  outputs: z.array(tensorSpecView).nullable().describe('The outputs it serves while loaded.'),
});

export const modelView = z.strictObject({
  name: z.string(),
  default_version: z.string().nullable().describe('The version an operator made the default; null: the highest READY version serves.'),
  serving_version: z.string().nullable().describe('The version that serves requests naming none; null when no version is READY.'),
  version_policy: versionPolicyView.nullable().describe('null when no version is READY.'),
  config_override: z.boolean().describe('Whether a configuration given to POST /v2/repository/models/{model}/load replaces config.json.'),
  versions: z.array(modelVersionView).describe('Highest first.'),
});

export const modelListView = z.strictObject({ models: z.array(modelView) });

export const uploadedVersionView = z.strictObject({
  name: z.string(),
  version: z.string(),
  sha256: z.string().regex(SHA256).describe('The sha256 of the uploaded file.'),
  bytes: z.number().int().min(1).describe('The size of the uploaded file.'),
});

export const defaultVersionSwapView = z.strictObject({
  name: z.string(),
  previous_version: z.string().nullable().describe('The version that served before; null when none did.'),
  version: z.string().describe('The version that serves now.'),
});

export const repositoryIndexEntryView = z.strictObject({
  name: z.string(),
  version: z.string().optional(),
  state: modelVersionState.optional(),
  reason: z.string().optional(),
});

export type ModelView = z.output<typeof modelView>;
export type ModelListView = z.output<typeof modelListView>;
export type UploadedVersionView = z.output<typeof uploadedVersionView>;
export type DefaultVersionSwapView = z.output<typeof defaultVersionSwapView>;
export type RepositoryIndexEntryView = z.output<typeof repositoryIndexEntryView>;
