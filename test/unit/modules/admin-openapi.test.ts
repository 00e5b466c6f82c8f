import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RequestMethod } from '@nestjs/common';
import { GUARDS_METADATA, HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { checkedModelName, checkedVersion } from '../../../src/domain/registry/model-name.js';
import { AdminAuthGuard } from '../../../src/modules/registry/manage-model-versions/admin-auth.guard.js';
import { AdminModelsHttpController } from '../../../src/modules/registry/manage-model-versions/admin-models.http.controller.js';
import { AdminOpenApiHttpController } from '../../../src/modules/registry/manage-model-versions/admin-openapi.http.controller.js';
import {
  ADMIN_OPENAPI,
  type HttpMethod,
  type OperationObject,
  type ParameterObject,
  type ReferenceObject,
  type SchemaObject,
} from '../../../src/modules/registry/manage-model-versions/admin-openapi.js';
import { RepositoryHttpController } from '../../../src/modules/registry/manage-model-versions/repository.http.controller.js';
import { RolloutHttpController } from '../../../src/modules/rollout/manage-rollout/rollout.http.controller.js';
import { rolloutDocument } from '../../../src/modules/rollout/manage-rollout/rollout.schemas.js';
import { openApiAjv, validatorOf } from '../../support/openapi-validator.js';

const CONTROLLERS = [AdminModelsHttpController, RepositoryHttpController, AdminOpenApiHttpController, RolloutHttpController];
const HTTP_METHODS: readonly HttpMethod[] = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
const OPENAPI_ROUTE = 'GET /admin/openapi.json';

/** A route as Nest registers it, read from the decorators' metadata. */
interface Route {
  readonly key: string;
  readonly successStatus: number;
  readonly guarded: boolean;
}

function routesOf(controller: Function): Route[] {
  const base = Reflect.getMetadata(PATH_METADATA, controller) as string;
  const controllerGuards = (Reflect.getMetadata(GUARDS_METADATA, controller) ?? []) as unknown[];
  const prototype = controller.prototype as Record<string, unknown>;
  const routes: Route[] = [];
  for (const name of Object.getOwnPropertyNames(prototype)) {
    const handler = prototype[name];
    if (name === 'constructor' || typeof handler !== 'function') continue;
    const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
    if (method === undefined) continue;
    const path = Reflect.getMetadata(PATH_METADATA, handler) as string;
    const segments = [base, path].map((part) => part.replace(/^\/+|\/+$/g, '')).filter((part) => part !== '');
    const template = `/${segments.join('/')}`.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const guards = [...controllerGuards, ...((Reflect.getMetadata(GUARDS_METADATA, handler) ?? []) as unknown[])];
    routes.push({
      key: `${RequestMethod[method]} ${template}`,
      successStatus: (Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined) ?? (method === RequestMethod.POST ? 201 : 200),
      guarded: guards.includes(AdminAuthGuard),
    });
  }
  return routes;
}

function operationsOfDocument(): Map<string, OperationObject> {
  const operations = new Map<string, OperationObject>();
  for (const [path, item] of Object.entries(ADMIN_OPENAPI.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (operation) operations.set(`${method.toUpperCase()} ${path}`, operation);
    }
  }
  return operations;
}

/** The object a `#/...` reference points at, or undefined. */
function resolvePointer(ref: string): unknown {
  assert.match(ref, /^#\//, `${ref} is not a local reference`);
  let node: unknown = ADMIN_OPENAPI;
  for (const token of ref.slice(2).split('/')) {
    const key = token.replace(/~1/g, '/').replace(/~0/g, '~');
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  }
  return node;
}

function parameter(p: ParameterObject | ReferenceObject): ParameterObject {
  if (!('$ref' in p)) return p;
  const resolved = resolvePointer(p.$ref);
  assert.ok(resolved, `${p.$ref} resolves`);
  return resolved as ParameterObject;
}

function refsIn(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) refsIn(item, found);
  else if (typeof node === 'object' && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') found.push(value);
      else refsIn(value, found);
    }
  }
  return found;
}

const routes = CONTROLLERS.flatMap(routesOf);
const operations = operationsOfDocument();

describe('the admin OpenAPI document', () => {
  it('is an OpenAPI 3.1 document versioned as the server, and plain JSON', () => {
    const packageJson = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(ADMIN_OPENAPI.openapi, '3.1.0');
    assert.equal(ADMIN_OPENAPI.info.version, packageJson.version);
    assert.deepEqual(JSON.parse(JSON.stringify(ADMIN_OPENAPI)), ADMIN_OPENAPI);
  });

  it('describes exactly the routes of the admin controllers', () => {
    assert.ok(routes.length >= 9, `found ${routes.length} routes: is the route metadata read?`);
    assert.deepEqual([...operations.keys()].sort(), routes.map((route) => route.key).sort());
  });

  it('gives each operation the success status its handler answers with', () => {
    for (const route of routes) {
      const operation = operations.get(route.key);
      if (!operation) continue; // reported by the test above
      const successes = Object.keys(operation.responses).filter((status) => /^2\d\d$/.test(status));
      assert.deepEqual(successes, [String(route.successStatus)], route.key);
    }
  });

  it('asks for the bearer token exactly where the admin guard is, with a 401 answer', () => {
    for (const route of routes) {
      const operation = operations.get(route.key);
      if (!operation) continue; // reported by the test above
      if (route.guarded) {
        assert.deepEqual(operation.security, [{ bearer: [] }], route.key);
        assert.ok(operation.responses['401'], `${route.key} has a 401 response`);
      } else {
        assert.deepEqual(operation.security, [], route.key);
      }
    }
    assert.deepEqual(routes.filter((route) => !route.guarded).map((route) => route.key), [OPENAPI_ROUTE]);
    const { type, scheme } = ADMIN_OPENAPI.components.securitySchemes.bearer;
    assert.deepEqual({ type, scheme }, { type: 'http', scheme: 'bearer' });
  });

  it('declares every path parameter, and only those', () => {
    for (const [key, operation] of operations) {
      const path = key.split(' ')[1];
      const item = ADMIN_OPENAPI.paths[path];
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]).sort();
      const declared = [...(item.parameters ?? []), ...(operation.parameters ?? [])].map(parameter).filter((p) => p.in === 'path');
      assert.deepEqual(declared.map((p) => p.name).sort(), inPath, key);
      for (const p of declared) assert.equal(p.required, true, `${key}: {${p.name}} is required`);
    }
  });

  it('has every reference resolve', () => {
    const refs = refsIn(ADMIN_OPENAPI);
    assert.ok(refs.length > 0);
    for (const ref of refs) assert.ok(resolvePointer(ref) !== undefined, `${ref} resolves`);
  });

  it('answers errors with the {"error": string} body', () => {
    for (const [key, operation] of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (/^2/.test(status)) continue;
        const resolved = ('$ref' in response ? resolvePointer(response.$ref) : response) as { content?: Record<string, { schema: unknown }> };
        assert.deepEqual(resolved.content?.['application/json']?.schema, { $ref: '#/components/schemas/Error' }, `${key} ${status}`);
      }
    }
  });

  describe('path parameter patterns accept what the controllers accept', () => {
    const { model, version } = ADMIN_OPENAPI.components.parameters;

    it('model names', () => {
      const matches = (name: string) => new RegExp(model.schema.pattern!).test(name) && !new RegExp((model.schema.not as SchemaObject).pattern!).test(name);
      const accepted = (name: string) => {
        try {
          checkedModelName(name);
          return true;
        } catch {
          return false;
        }
      };
      const samples = ['iris', 'A', 'my-model_v1.2', '9', 'a'.repeat(128), 'a'.repeat(129), 'a..b', '..', '.hidden', '-x', '_x', 'a/b', 'a%2e', 'a b', '', 'é'];
      for (const name of samples) assert.equal(matches(name), accepted(name), JSON.stringify(name));
    });

    it('versions', () => {
      const matches = (text: string) => new RegExp(version.schema.pattern!).test(text);
      const accepted = (text: string) => {
        try {
          checkedVersion(text);
          return true;
        } catch {
          return false;
        }
      };
      // Above 2^53 - 1 only the description can say it (16-digit numbers past it match the pattern).
      const samples = ['1', '2', '10', '9007199254740991', '0', '01', '-1', '1.5', '1e3', ' 1', '', '12345678901234567', 'latest'];
      for (const text of samples) assert.equal(matches(text), accepted(text), JSON.stringify(text));
      assert.equal(accepted('9007199254740992'), false);
      assert.match(version.description, /2\^53 - 1/);
    });
  });

  it('says what a load runs (only model_warmup samples, never made-up inputs) and which versions a swap keeps', () => {
    const operation = (path: string, method: HttpMethod) => (ADMIN_OPENAPI.paths[path] as Record<HttpMethod, OperationObject>)[method];
    const load = operation('/admin/models/{model}/versions/{version}/load', 'post');
    const swap = operation('/admin/models/{model}/default-version', 'put');
    const unload = operation('/admin/models/{model}/versions/{version}/unload', 'post');
    for (const described of [load, swap]) {
      assert.doesNotMatch(described.description ?? '', /warms? up/, 'no implicit warm-up run');
      assert.match(described.description ?? '', /model_warmup/);
    }
    assert.match(load.description ?? '', /explicitly loaded: it stays loaded until it is unloaded/);
    assert.match(swap.description ?? '', /except the versions loaded explicitly/);
    assert.match(unload.description ?? '', /whose load failed .* no longer holds strict readiness back/);
  });
});

describe('the admin OpenAPI schemas, generated from the zod schemas of the bodies', () => {
  const { schemas } = ADMIN_OPENAPI.components;

  it('are each a valid JSON Schema 2020-12 (OpenAPI 3.1 dialect), without a document key of their own', () => {
    const requests = ['DefaultVersionRequest', 'RepositoryIndexRequest', 'RepositoryLoadRequest', 'RepositoryUnloadRequest', 'RolloutDocument', 'UnloadVersionRequest'];
    const responses = ['DefaultVersionSwap', 'Error', 'Model', 'ModelList', 'ModelVersion', 'ModelVersionState', 'RepositoryIndexEntry', 'Rollout', 'TensorSpec', 'UploadedVersion', 'VersionFigures', 'VersionPolicy'];
    assert.deepEqual(Object.keys(schemas).sort(), [...requests, ...responses].sort(), 'one component per body schema, none lost to another of the same name');
    for (const [name, schema] of Object.entries(schemas)) {
      assert.ok(openApiAjv.validateSchema(schema), `${name}: ${openApiAjv.errorsText(openApiAjv.errors)}`);
      assert.equal('$schema' in schema || '$id' in schema, false, name);
    }
  });

  it('describe every JSON request body by a component, and each example is valid against it', () => {
    let examples = 0;
    for (const [key, operation] of operations) {
      const media = operation.requestBody?.content['application/json'];
      if (!media) continue;
      assert.match(media.schema.$ref ?? '', /^#\/components\/schemas\/\w+Request$|^#\/components\/schemas\/RolloutDocument$/, `${key}: a named request body`);
      if (media.example === undefined) continue;
      const validate = validatorOf(media.schema.$ref!);
      assert.ok(validate(media.example), `${key}: ${openApiAjv.errorsText(validate.errors)}`);
      examples++;
    }
    assert.equal(examples, 6);
  });

  it("say which header names a rollout takes, as the server checks them (the pattern the hand-written document lacked)", () => {
    const document = schemas.RolloutDocument as any;
    const headerSchemas = [document.properties.sticky_header, document.properties.rules.items.properties.header];
    for (const schema of headerSchemas) {
      assert.equal(typeof schema.pattern, 'string');
      assert.equal(schema.maxLength, 256);
    }
    const validate = validatorOf('#/components/schemas/RolloutDocument');
    const samples = ['x-user-id', 'X-Env', "a!#$%&'*+.^_`|~-z", 'x'.repeat(256), 'x'.repeat(257), 'x user', 'x:y', '', 'é', 'a\nb'];
    for (const header of samples) {
      const body = { stable: 1, sticky_header: header, rules: [{ header, equals: 'v', version: '2' }] };
      assert.equal(validate(body), rolloutDocument.safeParse(body).success, JSON.stringify(header));
    }
  });

  it('name every field of every response in snake_case', () => {
    const responses = ['Error', 'Model', 'ModelList', 'ModelVersion', 'TensorSpec', 'UploadedVersion', 'DefaultVersionSwap', 'Rollout', 'VersionFigures', 'RepositoryIndexEntry'];
    for (const name of responses) {
      assert.ok(schemas[name], `${name} is described`);
      for (const field of propertyNamesIn(schemas[name])) assert.match(field, /^[a-z][a-z0-9_]*$/, `${name}.${field}`);
    }
  });
});

/** The property names a schema declares, however deep. */
function propertyNamesIn(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) propertyNamesIn(item, found);
  else if (typeof node === 'object' && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'properties' && typeof value === 'object' && value !== null) found.push(...Object.keys(value));
      propertyNamesIn(value, found);
    }
  }
  return found;
}
