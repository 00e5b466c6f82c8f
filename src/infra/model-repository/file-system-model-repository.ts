import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { ModelRepository, type ModelDirectory, type VersionDirectory } from '../../domain/registry/model-repository.port.js';
import { parseModelConfig } from './model-config.schema.js';

export const CONFIG_FILE = 'config.json';
export const MODEL_FILE = 'model.onnx';

/** Reads Triton's repository layout: `<root>/<model>/[config.json]`, `<root>/<model>/<version>/model.onnx`. */
export class FileSystemModelRepository extends ModelRepository {
  constructor(private readonly root: string) {
    super();
  }

  async sha256(modelPath: string): Promise<string> {
    const hash = createHash('sha256');
    await pipeline(createReadStream(modelPath), hash);
    return hash.digest('hex');
  }

  async scan(): Promise<ModelDirectory[]> {
    const entries = await readdir(this.root, { withFileTypes: true });
    const names = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
    return Promise.all(names.map((name) => this.readModel(name)));
  }

  async scanModel(name: string): Promise<ModelDirectory | undefined> {
    // Names reach here validated (no separators, no dot segments); the join stays inside the root.
    try {
      return await this.readModel(name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  private async readModel(name: string): Promise<ModelDirectory> {
    const dir = join(this.root, name);
    const entries = await readdir(dir, { withFileTypes: true });
    // Like Triton, directories whose name is not a positive integer are not versions and are ignored.
    const versions: VersionDirectory[] = entries
      .filter((e) => e.isDirectory() && /^[1-9]\d*$/.test(e.name) && Number.isSafeInteger(Number(e.name)))
      .map((e) => ({ version: Number(e.name), modelPath: join(dir, e.name, MODEL_FILE) }));
    return { name, versions, config: await this.readConfig(join(dir, CONFIG_FILE)) };
  }

  private async readConfig(path: string): Promise<ModelDirectory['config']> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, declared: {} };
      return { ok: false, reason: `${CONFIG_FILE} cannot be read: ${(error as Error).message}` };
    }
    try {
      return { ok: true, declared: parseModelConfig(text) };
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
  }
}
