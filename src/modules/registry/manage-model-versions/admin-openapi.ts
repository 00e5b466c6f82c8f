import { z } from 'zod';
import { rolloutDocument, rolloutView, versionFiguresView } from '../../rollout/manage-rollout/rollout.schemas.js';
import { SERVER_VERSION } from '../../health/server-identity.js';
import {
  defaultVersionRequest,
  defaultVersionSwapView,
  modelListView,
  modelVersionState,
  modelVersionView,
  modelView,
  repositoryIndexEntryView,
  repositoryIndexRequest,
  repositoryLoadRequest,
  repositoryUnloadRequest,
  tensorSpecView,
  unloadVersionRequest,
  uploadedVersionView,
  versionPolicyView,
} from './admin-api.schemas.js';

/*
 * The OpenAPI 3.1 description of the admin API (AdminModelsHttpController, RepositoryHttpController,
 * RolloutHttpController), served by GET /admin/openapi.json. Its component schemas are generated
 * from the zod schemas the controllers parse requests with and the mappers' answers are typed by
 * (z.toJSONSchema, built into zod 4: no second description to keep in step); the operations, their
 * prose and their error lists are written here. test/unit/modules/admin-openapi.test.ts checks it
 * against the controllers' routes, so a route added there without being described here fails the tests.
 */

/** A JSON Schema 2020-12 object (OpenAPI 3.1's dialect), as zod writes them. */
export type SchemaObject = z.core.JSONSchema.JSONSchema;

export interface ReferenceObject {
  readonly $ref: string;
}

export interface ParameterObject {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header';
  readonly required: boolean;
  readonly description: string;
  readonly schema: SchemaObject;
}

interface MediaTypeObject {
  readonly schema: SchemaObject;
  readonly example?: unknown;
}

interface RequestBodyObject {
  readonly description: string;
  readonly required: boolean;
  readonly content: Readonly<Record<string, MediaTypeObject>>;
}

interface ResponseObject {
  readonly description: string;
  readonly content?: Readonly<Record<string, MediaTypeObject>>;
}

export interface OperationObject {
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tags: readonly string[];
  /** `[]`: no authentication. */
  readonly security: readonly Readonly<Record<string, readonly string[]>>[];
  readonly parameters?: readonly (ParameterObject | ReferenceObject)[];
  readonly requestBody?: RequestBodyObject;
  readonly responses: Readonly<Record<string, ResponseObject | ReferenceObject>>;
}

export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options';

type PathItemObject = Partial<Record<HttpMethod, OperationObject>> & {
  readonly parameters?: readonly (ParameterObject | ReferenceObject)[];
};

export interface OpenApiDocument {
  readonly openapi: '3.1.0';
  readonly info: { readonly title: string; readonly version: string; readonly description: string };
  readonly tags: readonly { readonly name: string; readonly description: string }[];
  readonly paths: Readonly<Record<string, PathItemObject>>;
  readonly components: {
    readonly securitySchemes: Readonly<Record<string, { readonly type: 'http'; readonly scheme: 'bearer'; readonly description: string }>>;
    readonly parameters: Readonly<Record<string, ParameterObject>>;
    readonly schemas: Readonly<Record<string, SchemaObject>>;
    readonly responses: Readonly<Record<string, ResponseObject>>;
  };
}

/** The `{"error": "<message>"}` body of every error (ErrorResponseFilter). */
const errorBody = z.strictObject({ error: z.string().describe('What went wrong.') });

/** The request bodies by component name, as a client writes them (zod's input side: defaults optional, before transforms). */
const REQUEST_SCHEMAS = {
  UnloadVersionRequest: unloadVersionRequest,
  DefaultVersionRequest: defaultVersionRequest,
  RolloutDocument: rolloutDocument,
  RepositoryIndexRequest: repositoryIndexRequest,
  RepositoryLoadRequest: repositoryLoadRequest,
  RepositoryUnloadRequest: repositoryUnloadRequest,
};

/** The response bodies by component name, as the server writes them (zod's output side). */
const RESPONSE_SCHEMAS = {
  Error: errorBody,
  ModelVersionState: modelVersionState,
  VersionPolicy: versionPolicyView,
  TensorSpec: tensorSpecView,
  ModelVersion: modelVersionView,
  Model: modelView,
  ModelList: modelListView,
  UploadedVersion: uploadedVersionView,
  DefaultVersionSwap: defaultVersionSwapView,
  VersionFigures: versionFiguresView,
  Rollout: rolloutView,
  RepositoryIndexEntry: repositoryIndexEntryView,
};

type ComponentName = keyof typeof REQUEST_SCHEMAS | keyof typeof RESPONSE_SCHEMAS;

/**
 * JSON Schemas of zod schemas, as OpenAPI components: a schema used inside another one of the same
 * side is a `$ref` to its component.
 */
function componentSchemas(schemas: Readonly<Record<string, z.ZodType>>, io: 'input' | 'output'): Record<string, SchemaObject> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const generated = z.toJSONSchema(registry, { io, target: 'draft-2020-12', uri: (id) => `#/components/schemas/${id}` }).schemas;
  // Each comes as a document of its own; in components the document's keys have no place.
  return Object.fromEntries(Object.entries(generated).map(([id, { $schema: _dialect, $id: _id, ...schema }]) => [id, schema]));
}

const schemaRef = (name: ComponentName): SchemaObject => ({ $ref: `#/components/schemas/${name}` });
const BEARER = [{ bearer: [] }] as const;
const JSON_TYPE = 'application/json';

const json = (schema: SchemaObject, example?: unknown): Readonly<Record<string, MediaTypeObject>> => ({
  [JSON_TYPE]: example === undefined ? { schema } : { schema, example },
});
/** An error answer: always the `{"error": "..."}` body of ErrorResponseFilter. */
const error = (description: string): ResponseObject => ({ description, content: json(schemaRef('Error')) });

const MODEL = { $ref: '#/components/parameters/model' } as const;
const VERSION = { $ref: '#/components/parameters/version' } as const;
const UNAUTHORIZED = { $ref: '#/components/responses/Unauthorized' } as const;
const FORBIDDEN = { $ref: '#/components/responses/Forbidden' } as const;

const ROLLOUT_EXAMPLE = {
  stable: '1',
  canary: { version: '2', weight: 10 },
  sticky_header: 'x-user-id',
  rules: [{ header: 'x-env', equals: 'staging', version: '2' }],
  shadow: { version: '3', percent: 5 },
  plan: { steps: [5, 25, 50, 100], min_requests: 200, min_dwell_seconds: 30, slo: { max_error_rate: 0.01, max_p99_ratio: 1.5 } },
};

/** A change whose state could not be saved: not made, or undone (the message says what serves). */
const NOT_SAVED = error("the change could not be saved (STATE_DIR full or read-only): it was not made, or was undone; the message says what serves (REGISTRY.STATE_NOT_SAVED)");
/** Replicas (REDIS_URL): the shared store cannot be reached; nothing changed. */
const STORE_UNAVAILABLE = error('replicas only: Redis (REDIS_URL), where replicas share their state, is unreachable: nothing changed; retry once it is back (SERVER.STATE_STORE_UNAVAILABLE)');
const BAD_NAME = 'the model name or the version in the path is not allowed (REGISTRY.INVALID_NAME)';
const BAD_BODY = 'the body is not JSON, or does not match its schema (ADMIN.INVALID_REQUEST); an empty body is {}, whatever the content type';
const CONFLICT =
  'the version is in a state that does not allow the change (REGISTRY.INVALID_TRANSITION), or the saved model state changed meanwhile (REGISTRY.STATE_CONFLICT)';

export const ADMIN_OPENAPI: OpenApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'onnx-serving admin API',
    version: SERVER_VERSION,
    description: [
      'Managing the models and versions a running server serves: upload a version, load and unload versions, make a version the default (the hot swap), and Triton\'s model-repository extension.',
      'Every route but this document needs `Authorization: Bearer <token>`: the token is ADMIN_TOKEN, or else the one the server generates at its first start into STATE_DIR/admin-token (readable only by its user) and reuses after. With ADMIN_AUTH=client-cert it needs instead a client certificate (mutual TLS) that TLS_CA_FILE verifies and, when ADMIN_CLIENT_NAMES is set, that names one of them; with ADMIN_AUTH=both, the two.',
      'Where: on HTTP_PORT with the rest of the API by default; with ADMIN_PORT set, on that port only (this document included), HTTP_PORT answering 403 to every route here and the gRPC port refusing the repository methods.',
      'Every error answers `{"error": "<message>"}` with the status of the server\'s error table. The operations on one model run one after another, each to its end; the model state is saved after each.',
    ].join('\n\n'),
  },
  tags: [
    { name: 'admin', description: 'The admin API of this server (/admin).' },
    { name: 'rollout', description: 'Canary splits, header rules, shadow traffic and progressive rollouts (/admin/models/{model}/rollout).' },
    { name: 'repository', description: "Triton's model-repository extension (/v2/repository), behind the same token." },
  ],
  paths: {
    '/admin/openapi.json': {
      get: {
        operationId: 'getAdminOpenApi',
        summary: 'This document',
        description: 'Needs no token: it describes the API, it gives no access to it.',
        tags: ['admin'],
        security: [],
        responses: {
          '200': { description: 'The OpenAPI 3.1 description of the admin API.', content: json({ type: 'object' }) },
        },
      },
    },
    '/admin/models': {
      get: {
        operationId: 'listModels',
        summary: 'The models the server knows, with the state of each version',
        tags: ['admin'],
        security: BEARER,
        responses: {
          '200': { description: 'Every model of the registry, by name.', content: json(schemaRef('ModelList')) },
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
        },
      },
    },
    '/admin/models/{model}/versions/{version}': {
      put: {
        operationId: 'uploadModelVersion',
        summary: 'Uploads a new version of a model (a new model when the name is new)',
        description: [
          'The body is the raw model.onnx file. It is written aside and loaded (with the model\'s config.json, in a runtime instance of its own that is then released; the `model_warmup` samples of that configuration, if any, run in it); only when it loads does the version directory appear in the repository. A version is never overwritten.',
          'The new version is not served: load it (POST .../load) or make it the default (PUT /admin/models/{model}/default-version).',
        ].join('\n\n'),
        tags: ['admin'],
        security: BEARER,
        parameters: [MODEL, VERSION],
        requestBody: {
          description: 'The model.onnx file, at most MAX_REQUEST_BYTES (64 MiB unless configured).',
          required: true,
          content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
        },
        responses: {
          '201': { description: 'The version was added to the repository.', content: json(schemaRef('UploadedVersion')) },
          '400': error(
            `${BAD_NAME}; the body is empty (ADMIN.INVALID_REQUEST); the model's config.json is invalid (REGISTRY.INVALID_CONFIG); the file does not load with the model's configuration, or fails one of its \`model_warmup\` samples (REGISTRY.LOAD_FAILED)`,
          ),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '409': error('the repository has this version already (REGISTRY.VERSION_EXISTS)'),
          '413': error('the body is larger than MAX_REQUEST_BYTES'),
          '415': error('the Content-Type is one the server does not parse'),
        },
      },
    },
    '/admin/models/{model}/versions/{version}/load': {
      post: {
        operationId: 'loadModelVersion',
        summary: 'Loads a version (found in the repository now, e.g. just uploaded)',
        description:
          "Loads the version (its sessions created and its signature read; nothing is run unless the model's configuration has `model_warmup` samples, which then run on every instance before it serves); a READY version stays as it is. Either way the version is now explicitly loaded: it stays loaded until it is unloaded (POST .../unload, or Triton's model unload), whatever the version policy would choose; a swap does not retire it. No body is read.",
        tags: ['admin'],
        security: BEARER,
        parameters: [MODEL, VERSION],
        responses: {
          '200': { description: 'The model after the load.', content: json(schemaRef('Model')) },
          '400': error(`${BAD_NAME}; the model's configuration is invalid (REGISTRY.INVALID_CONFIG); the version failed to load or one of its \`model_warmup\` samples failed (REGISTRY.LOAD_FAILED; it is then UNAVAILABLE with the reason)`),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('the repository has no such model (REGISTRY.MODEL_NOT_FOUND) or no such version of it (REGISTRY.VERSION_NOT_FOUND)'),
          '409': error(CONFLICT),
        },
      },
    },
    '/admin/models/{model}/versions/{version}/unload': {
      post: {
        operationId: 'unloadModelVersion',
        summary: 'Drains a READY version (every request it accepted is answered), then releases it; or unloads a version whose load failed',
        description:
          'The version that serves requests naming none is not unloaded when it is the pinned default or the only READY version, unless `force` is true. A version whose load failed (UNAVAILABLE with the error) is unloaded too: it then shows as UNAVAILABLE "unloaded" and no longer holds strict readiness back. An explicitly loaded version is one no longer. Send no body, or a JSON one (an empty body with Content-Type application/json is a 400).',
        tags: ['admin'],
        security: BEARER,
        parameters: [MODEL, VERSION],
        requestBody: {
          description: 'Optional.',
          required: false,
          content: json(schemaRef('UnloadVersionRequest'), { force: true }),
        },
        responses: {
          '200': { description: 'The model after the unload.', content: json(schemaRef('Model')) },
          '400': error(`${BAD_NAME}; ${BAD_BODY}`),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('the server knows no such model (REGISTRY.MODEL_NOT_FOUND) or no such version of it (REGISTRY.VERSION_NOT_FOUND)'),
          '409': error(
            'the version is the default or the only READY version and force is not true, or it is neither READY nor failed (loading, unloaded already, never loaded: REGISTRY.INVALID_TRANSITION); the saved model state changed meanwhile (REGISTRY.STATE_CONFLICT)',
          ),
        },
      },
    },
    '/admin/models/{model}/default-version': {
      put: {
        operationId: 'setDefaultVersion',
        summary: 'The hot swap: makes a version the one that serves requests naming none',
        description:
          "Loads the version if it is not READY, running the model's `model_warmup` samples on it if its configuration has any (on failure the version serving now keeps serving and the error is answered), switches routing to it atomically, then drains and unloads the READY versions the version policy no longer keeps (latest(n): the new default and the n-1 highest others stay), except the versions loaded explicitly (POST .../load), which stay until they are unloaded. Answers once the new version serves.",
        tags: ['admin'],
        security: BEARER,
        parameters: [MODEL],
        requestBody: {
          description: 'The version to serve.',
          required: true,
          content: json(schemaRef('DefaultVersionRequest'), { version: '2' }),
        },
        responses: {
          '200': { description: 'The version now serves.', content: json(schemaRef('DefaultVersionSwap')) },
          '400': error(`${BAD_NAME}; ${BAD_BODY}; the model's configuration is invalid (REGISTRY.INVALID_CONFIG); the version failed to load or one of its \`model_warmup\` samples failed (REGISTRY.LOAD_FAILED)`),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('the repository has no such model (REGISTRY.MODEL_NOT_FOUND) or no such version of it (REGISTRY.VERSION_NOT_FOUND)'),
          '409': error(CONFLICT),
        },
      },
    },
    '/admin/models/{model}/rollout': {
      put: {
        operationId: 'startRollout',
        summary: 'Starts a rollout of the model, replacing its current one',
        description:
          'Routes the requests that name no version: header rules first (first match wins), then the canary split (sticky per `sticky_header` value when given), and mirrors a share to the shadow version in the background. With a plan, the canary walks through the steps by itself: each step is judged on its figures once it has `min_requests` canary requests and `min_dwell_seconds`; a breach of the SLO rolls back at once (also as soon as the failures exceed what the step could allow), the last step held promotes. Every version named must be READY.',
        tags: ['rollout'],
        security: BEARER,
        parameters: [MODEL],
        requestBody: { description: 'The rollout; every part but `stable` is optional.', required: true, content: json(schemaRef('RolloutDocument'), ROLLOUT_EXAMPLE) },
        responses: {
          '200': { description: 'The rollout, started.', content: json(schemaRef('Rollout')) },
          '400': error(`${BAD_BODY}, naming the field; an invalid combination (ROLLOUT.INVALID_SPEC)`),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('the server knows no such model (REGISTRY.MODEL_NOT_FOUND)'),
          '409': error('a version it names is not READY (ROLLOUT.VERSION_NOT_READY)'),
        },
      },
      get: {
        operationId: 'getRollout',
        summary: 'The rollout: state, current step, per-version figures of the step, and the history of decisions',
        tags: ['rollout'],
        security: BEARER,
        parameters: [MODEL],
        responses: {
          '200': { description: 'The rollout.', content: json(schemaRef('Rollout')) },
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '404': error('no such model (REGISTRY.MODEL_NOT_FOUND), or it has no rollout (ROLLOUT.NOT_FOUND)'),
        },
      },
    },
    '/admin/models/{model}/rollout/promote': {
      post: {
        operationId: 'promoteRollout',
        summary: 'Makes the canary the stable version (and the model\'s default version: the hot swap)',
        tags: ['rollout'],
        security: BEARER,
        parameters: [MODEL],
        responses: {
          '200': { description: 'Promoted.', content: json(schemaRef('Rollout')) },
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('no such model, or no rollout (ROLLOUT.NOT_FOUND)'),
          '409': error('the rollout has no canary or is not in progress (ROLLOUT.INVALID_TRANSITION)'),
        },
      },
    },
    '/admin/models/{model}/rollout/abort': {
      post: {
        operationId: 'abortRollout',
        summary: 'Returns every request to the stable version',
        tags: ['rollout'],
        security: BEARER,
        parameters: [MODEL],
        responses: {
          '200': { description: 'Aborted.', content: json(schemaRef('Rollout')) },
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('no such model, or no rollout (ROLLOUT.NOT_FOUND)'),
          '409': error('the rollout is not in progress (ROLLOUT.INVALID_TRANSITION)'),
        },
      },
    },
    '/v2/repository/index': {
      post: {
        operationId: 'repositoryIndex',
        summary: "Triton's repository index: the models of the repository and the state of their versions",
        description: 'One entry per version the server knows; a model directory with none known is one entry with only its name (left out when `ready` is true).',
        tags: ['repository'],
        security: BEARER,
        requestBody: {
          description: 'Optional.',
          required: false,
          content: json(schemaRef('RepositoryIndexRequest'), { ready: true }),
        },
        responses: {
          '200': { description: 'The index.', content: json({ type: 'array', items: schemaRef('RepositoryIndexEntry') }) },
          '400': error(BAD_BODY),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
        },
      },
    },
    '/v2/repository/models/{model}/load': {
      post: {
        operationId: 'repositoryLoadModel',
        summary: "Triton's repository load: the model (re)read from the repository and the versions its policy selects loaded",
        description:
          'With `parameters.config` (a config.json text) that configuration replaces the model\'s config.json, is saved, and every selected version is reloaded with it; without, READY versions stay. READY versions the policy no longer selects are unloaded, except those loaded explicitly (POST /admin/models/{model}/versions/{version}/load); versions whose load failed are unloaded too. File parameters are not supported: uploads go to PUT /admin/models/{model}/versions/{version}.',
        tags: ['repository'],
        security: BEARER,
        parameters: [MODEL],
        requestBody: {
          description: 'Optional.',
          required: false,
          content: json(schemaRef('RepositoryLoadRequest'), { parameters: { config: '{"max_batch_size": 8, "version_policy": {"latest": {"num_versions": 2}}}' } }),
        },
        responses: {
          '200': { description: 'Loaded. The body is empty, as Triton\'s.' },
          '400': error(
            `${BAD_NAME}; ${BAD_BODY}, or a parameter other than a string \`config\`; the configuration is invalid (REGISTRY.INVALID_CONFIG); a version failed to load or one of its \`model_warmup\` samples failed (REGISTRY.LOAD_FAILED)`,
          ),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('the repository has no such model (REGISTRY.MODEL_NOT_FOUND)'),
          '409': error(CONFLICT),
        },
      },
    },
    '/v2/repository/models/{model}/unload': {
      post: {
        operationId: 'repositoryUnloadModel',
        summary: "Triton's repository unload: every READY version of the model drained, then released (and every failed one unloaded)",
        tags: ['repository'],
        security: BEARER,
        parameters: [MODEL],
        requestBody: {
          description: 'Optional. Parameters (such as Triton\'s `unload_dependents`) are accepted and ignored.',
          required: false,
          content: json(schemaRef('RepositoryUnloadRequest'), { parameters: { unload_dependents: true } }),
        },
        responses: {
          '200': { description: 'Unloaded. The body is empty, as Triton\'s.' },
          '400': error(`${BAD_NAME}; ${BAD_BODY}`),
          '401': UNAUTHORIZED,
          '403': FORBIDDEN,
          '500': NOT_SAVED,
          '503': STORE_UNAVAILABLE,
          '404': error('the server knows no such model (REGISTRY.MODEL_NOT_FOUND)'),
          '409': error(CONFLICT),
        },
      },
    },
  },
  components: {
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description: 'ADMIN_TOKEN, or else the token the server generated into STATE_DIR/admin-token (mode 0600).',
      },
    },
    parameters: {
      model: {
        name: 'model',
        in: 'path',
        required: true,
        description: "A model name: 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'.",
        schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$', not: { pattern: '\\.\\.' } },
      },
      version: {
        name: 'version',
        in: 'path',
        required: true,
        description: 'A version: a positive integer without leading zeros, at most 2^53 - 1.',
        schema: { type: 'string', pattern: '^[1-9][0-9]{0,15}$' },
      },
    },
    schemas: { ...componentSchemas(REQUEST_SCHEMAS, 'input'), ...componentSchemas(RESPONSE_SCHEMAS, 'output') },
    responses: {
      Unauthorized: error('No `Authorization: Bearer <token>` header, or not the admin token; with ADMIN_AUTH=client-cert or both, no client certificate that TLS_CA_FILE verifies (AUTH.UNAUTHENTICATED).'),
      Forbidden: error('ADMIN_AUTH=client-cert or both: a verified client certificate whose names are not in ADMIN_CLIENT_NAMES (AUTH.FORBIDDEN).'),
    },
  },
};
