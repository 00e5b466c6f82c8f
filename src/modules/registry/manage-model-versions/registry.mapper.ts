import type { ModelSignature, TensorSpec } from '../../../domain/inference/tensor.js';
import { servedSignature } from '../../../domain/registry/model-config.js';
import type { Model } from '../../../domain/registry/model.js';
import { toConfigFile } from '../../../infra/model-repository/model-config.schema.js';
import type { DefaultVersionSwapView, ModelView, UploadedVersionView } from './admin-api.schemas.js';

/** The registry context's wire mapping for the admin API (snake_case, versions as strings): domain objects never go on the wire themselves. */

/** A model with every version; `configOverride`: whether a Triton load's configuration replaces its config.json. */
export function toModelView(model: Model, configOverride: boolean): ModelView {
  const serving = model.servingVersion();
  return {
    name: model.name,
    default_version: model.defaultVersion === undefined ? null : String(model.defaultVersion),
    serving_version: serving ? String(serving.version) : null,
    version_policy: serving?.config ? (toConfigFile(serving.config).version_policy ?? null) : null,
    config_override: configOverride,
    versions: model.versions.map((v) => ({
      version: String(v.version),
      state: v.state,
      reason: v.reason,
      sha256: v.fileSha256 ?? null,
      loaded_at: v.loadedAt?.toISOString() ?? null,
      execution_provider: v.executionProvider ?? null,
      ...(v.config ? signatureView(servedSignature(v.config)) : { inputs: null, outputs: null }),
    })),
  };
}

function signatureView(signature: ModelSignature): Pick<ModelView['versions'][number], 'inputs' | 'outputs'> {
  const tensor = (spec: TensorSpec) => ({ name: spec.name, datatype: spec.datatype, shape: [...spec.shape] });
  return { inputs: signature.inputs.map(tensor), outputs: signature.outputs.map(tensor) };
}

export function toUploadedVersionView(name: string, version: number, sha256: string, bytes: number): UploadedVersionView {
  return { name, version: String(version), sha256, bytes };
}

/** The hot swap's answer: which version served before (`from`, if any) and which serves now. */
export function toDefaultVersionSwapView(name: string, swap: { readonly from?: number; readonly to: number }): DefaultVersionSwapView {
  return { name, previous_version: swap.from === undefined ? null : String(swap.from), version: String(swap.to) };
}
