import { DomainError } from '../shared/domain-error.js';

/**
 * A kind of model this server runs (Triton's backend): how a model configuration names it and how
 * its version directories hold it. Each runtime adapter describes its own; nothing else names a
 * runtime, its platform or its file.
 */
export interface ModelBackend {
  /** Triton's `backend` field (`onnxruntime`). */
  readonly name: string;
  /** The `platform` values that mean this backend; the first is the one a served configuration reports. */
  readonly platforms: readonly [string, ...string[]];
  /** The model file in a version directory (Triton's default_model_filename: `model.onnx`). */
  readonly modelFileName: string;
}

/** What a model configuration says of its backend (both optional, as in Triton). */
export interface BackendChoice {
  readonly platform?: string;
  readonly backend?: string;
}

/**
 * Port: the backends this server has, and which one serves a model. The adapters register theirs
 * (one provider each, in infra); a configuration naming neither `platform` nor `backend` gets the
 * first registered.
 */
export abstract class ModelBackends {
  /** The backend a configuration asks for; throws REGISTRY.INVALID_CONFIG naming what is not served. */
  abstract forConfig(choice: BackendChoice): ModelBackend;
}

/**
 * The backend a configuration asks for, among `backends` (the first one when it names none):
 * `backend` by its name, `platform` among the backend's platforms, both when both are given.
 */
export function chooseBackend(backends: readonly ModelBackend[], choice: BackendChoice): ModelBackend {
  if (backends.length === 0) throw new Error('no model backend is registered');
  const byName = choice.backend === undefined ? undefined : backends.find((backend) => backend.name === choice.backend);
  if (choice.backend !== undefined && !byName) {
    throw invalid(`backend '${choice.backend}' is not served here; ${oneOrMany('backend', backends.map((backend) => backend.name))}`);
  }
  const candidates = byName ? [byName] : backends;
  if (choice.platform === undefined) return candidates[0]!;
  const byPlatform = candidates.find((backend) => backend.platforms.includes(choice.platform!));
  if (!byPlatform) {
    const served = oneOrMany('platform', candidates.flatMap((backend) => backend.platforms));
    throw invalid(`platform '${choice.platform}' is not served ${byName ? `by backend '${byName.name}'` : 'here'}; ${served}`);
  }
  return byPlatform;
}

function oneOrMany(what: string, names: readonly string[]): string {
  return names.length === 1 ? `the only ${what} is '${names[0]}'` : `the ${what}s served are ${names.map((name) => `'${name}'`).join(', ')}`;
}

function invalid(message: string): DomainError {
  return new DomainError('REGISTRY.INVALID_CONFIG', message);
}
