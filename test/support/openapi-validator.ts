import assert from 'node:assert/strict';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import { ADMIN_OPENAPI } from '../../src/modules/registry/manage-model-versions/admin-openapi.js';

// ajv-formats is CommonJS: its function is module.exports (and its `default`).
const addFormats = ajvFormats.default as unknown as (ajv: Ajv2020) => Ajv2020;

const DOCUMENT_ID = 'https://onnx-serving.invalid/admin/openapi.json';

/**
 * A JSON Schema 2020-12 validator (ajv) holding the admin OpenAPI document, so that what a client
 * reads in GET /admin/openapi.json is held against real bodies: the document's own `$ref`s
 * (`#/components/schemas/X`) resolve inside it.
 */
export const openApiAjv = new Ajv2020({ strict: false, allErrors: true });
addFormats(openApiAjv);
openApiAjv.addSchema({ $id: DOCUMENT_ID, components: ADMIN_OPENAPI.components }, DOCUMENT_ID);

const compiled = new Map<string, ValidateFunction>();

/** A validator for the document's schema at `pointer` (e.g. `#/components/schemas/Rollout`). */
export function validatorOf(pointer: string): ValidateFunction {
  let validate = compiled.get(pointer);
  if (!validate) {
    validate = openApiAjv.compile({ $ref: `${DOCUMENT_ID}${pointer}` });
    compiled.set(pointer, validate);
  }
  return validate;
}

/** Asserts that `value` is valid against the component schema `name` of the admin OpenAPI document. */
export function assertMatchesComponent(name: string, value: unknown, what = name): void {
  const validate = validatorOf(`#/components/schemas/${name}`);
  assert.ok(validate(value), `${what} does not match components.schemas.${name}: ${openApiAjv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
}

/** Every key of every object in `value`, however deep (for checking a body's naming). */
export function keysIn(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) keysIn(item, found);
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      found.push(key);
      keysIn(item, found);
    }
  }
  return found;
}
