import type { DeclaredModelConfig } from '../../../src/domain/registry/model-config.js';
import { ModelRepository, type ModelDirectory } from '../../../src/domain/registry/model-repository.port.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';

const ROOT = '/repository/';

interface StoredModel {
  config: ModelDirectory['config'];
  readonly versions: Set<number>;
  readonly labels: Map<string, string[]>;
}

/**
 * A model repository held in memory: models with a declared configuration (or an unreadable one)
 * and version numbers. Model files are paths that do not exist (`/repository/<m>/<v>/model.onnx`):
 * the engine double decides what "loading" one gives. Overrides are JSON of the declared form.
 */
export class InMemoryModelRepository extends ModelRepository {
  private readonly models = new Map<string, StoredModel>();

  /** Adds (or replaces) a model with these versions and this declared configuration. */
  withModel(name: string, versions: readonly number[], declared: DeclaredModelConfig = {}): this {
    this.models.set(name, { config: { ok: true, declared }, versions: new Set(versions), labels: new Map() });
    return this;
  }

  /** Takes a model out of the repository (its directory deleted). */
  withoutModel(name: string): this {
    this.models.delete(name);
    return this;
  }

  /** A model whose config file cannot be read, for this reason. */
  withBrokenConfig(name: string, versions: readonly number[], reason: string): this {
    this.models.set(name, { config: { ok: false, reason }, versions: new Set(versions), labels: new Map() });
    return this;
  }

  withLabels(name: string, file: string, labels: string[]): this {
    this.models.get(name)!.labels.set(file, labels);
    return this;
  }

  /** The model file of a version, as the repository names it. */
  static modelPath(name: string, version: number): string {
    return `${ROOT}${name}/${version}/model.onnx`;
  }

  versionsOf(name: string): number[] {
    return [...(this.models.get(name)?.versions ?? [])].sort((a, b) => a - b);
  }

  async scan(): Promise<ModelDirectory[]> {
    return [...this.models.keys()].sort().map((name) => this.directory(name));
  }

  async removeAbandonedUploads(): Promise<string[]> {
    return [];
  }

  async scanModel(name: string): Promise<ModelDirectory | undefined> {
    return this.models.has(name) ? this.directory(name) : undefined;
  }

  parseConfig(text: string): DeclaredModelConfig {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('config.json: (root): expected an object');
    return parsed as DeclaredModelConfig;
  }

  async addVersion(name: string, version: number, _bytes: Uint8Array, validate: (modelPath: string) => Promise<void>): Promise<void> {
    const existing = this.models.get(name);
    if (existing?.versions.has(version)) throw new DomainError('REGISTRY.VERSION_EXISTS', `model '${name}' already has version ${version} in the repository`);
    await validate(`${ROOT}${name}/.upload-0000000000000000/model.onnx`);
    if (existing) existing.versions.add(version);
    else this.withModel(name, [version]);
  }

  async warmupFilePath(name: string, file: string): Promise<string> {
    return `${ROOT}${name}/warmup/${file}`;
  }

  async readLabels(name: string, labelFilename: string): Promise<string[]> {
    const labels = this.models.get(name)?.labels.get(labelFilename);
    if (!labels) throw new Error(`label file '${labelFilename}' cannot be read`);
    return labels;
  }

  async sha256(modelPath: string): Promise<string> {
    return Buffer.from(modelPath).toString('hex').slice(0, 64).padEnd(64, '0');
  }

  withoutPaths(text: string): string {
    return text.split(ROOT).join('');
  }

  private directory(name: string): ModelDirectory {
    const model = this.models.get(name)!;
    return { name, config: model.config, versions: this.versionsOf(name).map((version) => ({ version, modelPath: InMemoryModelRepository.modelPath(name, version) })) };
  }
}
