import { DomainError } from '../shared/domain-error.js';
import type { ModelVersion } from './model-version.js';

/** A model of the repository and the versions chosen to be served. */
export class Model {
  private readonly versionsByNumber = new Map<number, ModelVersion>();

  private constructor(
    readonly name: string,
    /** Why the model as a whole cannot serve (e.g. no version directory), empty when it can. */
    readonly problem: string,
  ) {}

  static discover(name: string, versions: readonly ModelVersion[], problem = ''): Model {
    const model = new Model(name, problem);
    for (const version of versions) {
      if (version.modelName !== name) {
        throw new DomainError('REGISTRY.INVALID_TRANSITION', `version ${version.version} belongs to '${version.modelName}', not '${name}'`);
      }
      model.versionsByNumber.set(version.version, version);
    }
    return model;
  }

  /** Versions, highest first. */
  get versions(): ModelVersion[] {
    return [...this.versionsByNumber.values()].sort((a, b) => b.version - a.version);
  }

  get readyVersions(): ModelVersion[] {
    return this.versions.filter((version) => version.isReady);
  }

  get isReady(): boolean {
    return this.readyVersions.length > 0;
  }

  /** A version this model serves or tried to; throws VERSION_NOT_FOUND for any other. */
  version(number: number): ModelVersion {
    const version = this.versionsByNumber.get(number);
    if (!version) {
      const served = this.versions.map((v) => v.version).join(', ') || 'none';
      throw new DomainError('REGISTRY.VERSION_NOT_FOUND', `model '${this.name}' has no version ${number} (versions: ${served})`);
    }
    return version;
  }

  /**
   * The version that serves a request: the one named, or else the highest READY one (Triton's rule).
   * Throws VERSION_NOT_FOUND for a version that is not served and VERSION_NOT_READY when it is not READY.
   */
  versionToServe(requested?: number): ModelVersion {
    if (requested !== undefined) {
      const version = this.version(requested);
      if (!version.isReady) {
        throw new DomainError('REGISTRY.VERSION_NOT_READY', `version ${requested} of model '${this.name}' is ${version.state}${version.reason ? `: ${version.reason}` : ''}`);
      }
      return version;
    }
    const [latest] = this.readyVersions;
    if (!latest) {
      const why = this.problem || (this.versions.length === 0 ? 'it has no versions' : '') || this.versions.map((v) => `version ${v.version} is ${v.state}${v.reason ? ` (${v.reason})` : ''}`).join('; ');
      throw new DomainError('REGISTRY.VERSION_NOT_READY', `model '${this.name}' has no READY version: ${why}`);
    }
    return latest;
  }
}
