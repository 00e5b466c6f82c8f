/**
 * Writes the JSON schema the KServe manifests of docker/kserve are checked against: the
 * openAPIV3Schema of KServe's published CRD (config/crd/full/serving.kserve.io_<plural>.yaml of
 * kserve/kserve), cut down to what the manifests use, so that the file stays small:
 * - every property the manifests set keeps its CRD schema (types, enums, required, nested objects
 *   cut down the same way); a property they do not set keeps its name with an empty schema, so that
 *   it is still a known field (setting it later passes until its real schema is extracted again);
 * - an object whose properties the CRD lists, and that does not preserve unknown fields, refuses
 *   unknown ones (additionalProperties: false), as the API server's strict field validation (kubectl's
 *   default) does: a misspelt field fails the test.
 *
 *   node .build/test/support/kserve/extract-crd-schema.js <crd.yaml> <version> <source note> <manifest.yaml>... > test/support/kserve/<kind>.schema.json
 */
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';

type Schema = { [key: string]: unknown; properties?: Record<string, Schema>; items?: Schema };

function cut(schema: Schema, examples: readonly unknown[]): Schema {
  const out: Schema = { ...schema };
  if (schema.properties) {
    const objects = examples.filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && !Array.isArray(e));
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([name, property]) => {
        const values = objects.filter((o) => name in o).map((o) => o[name]);
        return [name, values.length === 0 ? {} : cut(property, values)];
      }),
    );
    if (schema['x-kubernetes-preserve-unknown-fields'] !== true && schema.additionalProperties === undefined) out.additionalProperties = false;
  }
  if (schema.items) out.items = cut(schema.items, examples.flatMap((e) => (Array.isArray(e) ? e : [])));
  delete out.description;
  return out;
}

const [crdFile, version, source, ...manifests] = process.argv.slice(2);
if (!crdFile || !version || !source || manifests.length === 0) throw new Error('usage: extract-crd-schema <crd.yaml> <version> <source note> <manifest.yaml>...');
const crd = parse(readFileSync(crdFile, 'utf8')) as { spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } };
const served = crd.spec.versions.find((v) => v.name === version);
if (!served) throw new Error(`${crdFile} has no version ${version}`);
const apiVersion = `${crd.spec.group}/${version}`;
const examples = manifests
  .flatMap((file) => parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => doc.toJS() as { apiVersion?: string; kind?: string }))
  .filter((doc) => doc.apiVersion === apiVersion && doc.kind === crd.spec.names.kind);
if (examples.length === 0) throw new Error(`no ${apiVersion} ${crd.spec.names.kind} in ${manifests.join(', ')}`);
const schema = cut(served.schema.openAPIV3Schema, examples);
process.stdout.write(
  `${JSON.stringify({ $comment: `${apiVersion} ${crd.spec.names.kind}: the openAPIV3Schema of ${source}, cut down to the fields docker/kserve sets by test/support/kserve/extract-crd-schema.ts`, 'x-kubernetes-group-version-kind': [{ group: crd.spec.group, version, kind: crd.spec.names.kind }], ...schema }, null, 1)}\n`,
);
