import { createHash } from 'node:crypto';
import { createReadStream, realpathSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join, normalize, resolve, sep } from 'node:path';
import type { ModelBackends } from '../../domain/registry/model-backend.js';
import type { DeclaredModelConfig } from '../../domain/registry/model-config.js';
import { ModelRepository, type ModelDirectory, type VersionDirectory } from '../../domain/registry/model-repository.port.js';
import { DomainError } from '../../domain/shared/domain-error.js';
import { parseModelConfig } from './model-config.schema.js';

const CONFIG_FILE = 'config.json';
/** Triton's folder of warm-up data files, beside the version directories (not a version: not a number). */
const WARMUP_FOLDER = 'warmup';

/** Label files are read whole into memory: a bound well above any real class list (ImageNet's is 22 KB). */
const MAX_LABEL_FILE_BYTES = 16 * 1024 * 1024;
/** Uploads are staged in hidden directories with this prefix, beside the version directories. */
const UPLOAD_PREFIX = '.upload-';
const STAGING_SEGMENT = /\.upload-[0-9a-f]{16}/g;

/**
 * Reads Triton's repository layout: `<root>/<model>/[config.json]`, `<root>/<model>/<version>/<model
 * file>`, the model file named by the model's backend (`model.onnx` for ONNX Runtime).
 */
export class FileSystemModelRepository extends ModelRepository {
  /** The ways a path inside the repository may start (as configured, absolute, resolved through links), longest first. */
  private rootPrefixes?: string[];

  constructor(
    private readonly root: string,
    private readonly backends: ModelBackends,
  ) {
    super();
  }

  withoutPaths(text: string): string {
    this.rootPrefixes ??= this.prefixes();
    let result = text;
    for (const prefix of this.rootPrefixes) result = result.split(prefix).join('');
    // A staged upload that a message still names is named as what it is.
    return result.replace(STAGING_SEGMENT, '(upload)');
  }

  private prefixes(): string[] {
    const roots = new Set([normalize(this.root), resolve(this.root)]);
    try {
      roots.add(realpathSync(this.root));
    } catch {
      // not there (yet): the configured and absolute forms are enough
    }
    return [...roots]
      .filter((root) => root !== sep && root !== '.')
      .map((root) => (root.endsWith(sep) ? root : root + sep))
      .sort((a, b) => b.length - a.length);
  }

  async addVersion(name: string, version: number, bytes: Uint8Array, validate: (modelPath: string) => Promise<void>): Promise<void> {
    const { dir: modelDir, created } = await this.insideRoot(name);
    const target = join(modelDir, String(version));
    if (await exists(target)) throw versionExists(name, version);
    let added = false;
    // A hidden directory: scans skip it (not a version number), so nothing half-written is ever seen.
    const staging = join(modelDir, `${UPLOAD_PREFIX}${randomBytes(8).toString('hex')}`);
    const fileName = this.modelFileOf(await this.readConfig(join(modelDir, CONFIG_FILE)));
    await mkdir(staging, { mode: 0o755 });
    try {
      const file = join(staging, fileName);
      const handle = await open(file, 'wx', 0o644);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await validate(file);
      if (await exists(target)) throw versionExists(name, version);
      await rename(staging, target).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'EEXIST' || error.code === 'ENOTEMPTY') throw versionExists(name, version);
        throw error;
      });
      await syncDirectory(modelDir);
      added = true;
    } finally {
      await rm(staging, { recursive: true, force: true });
      // A refused upload of a new model leaves no trace of it.
      if (!added && created) await rm(modelDir, { recursive: true, force: true });
    }
  }

  /** The model's directory, created if new, after checking that it resolves inside the repository (no symlink out). */
  private async insideRoot(name: string): Promise<{ dir: string; created: boolean }> {
    const root = await realpath(this.root);
    const dir = join(root, name);
    const created = !(await exists(dir));
    if (created) await mkdir(dir, { mode: 0o755 });
    const resolved = await realpath(dir);
    if (!resolved.startsWith(root + sep)) {
      throw new DomainError('REGISTRY.INVALID_NAME', `model directory '${name}' resolves outside the model repository`);
    }
    return { dir: resolved, created };
  }

  async warmupFilePath(name: string, file: string): Promise<string> {
    const where = `model '${name}': warm-up file '${file}'`;
    try {
      const folder = await realpath(join(this.root, name, WARMUP_FOLDER));
      const resolved = await realpath(join(folder, file));
      if (!resolved.startsWith(folder + sep)) throw new DomainError('REGISTRY.INVALID_CONFIG', `${where} resolves outside the model's ${WARMUP_FOLDER}/ folder`);
      if (!(await stat(resolved)).isFile()) throw new DomainError('REGISTRY.INVALID_CONFIG', `${where} is not a file`);
      return resolved;
    } catch (error) {
      if (error instanceof DomainError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' || code === 'ENOTDIR' ? `is not in the model's ${WARMUP_FOLDER}/ folder` : `cannot be read: ${this.withoutPaths((error as Error).message)}`;
      throw new DomainError('REGISTRY.INVALID_CONFIG', `${where} ${why}`);
    }
  }

  async readLabels(name: string, labelFilename: string): Promise<string[]> {
    const root = await realpath(this.root);
    const modelDir = await realpath(join(root, name));
    // Triton refuses a label file outside the model directory; a symlink must not lead out either.
    const file = await realpath(resolve(modelDir, labelFilename)).catch((error: Error) => {
      throw new Error(`label file '${labelFilename}' cannot be read: ${error.message.split(root).join('<repository>')}`);
    });
    if (!file.startsWith(modelDir + sep)) throw new Error(`label file '${labelFilename}' is outside the model directory`);
    const info = await stat(file);
    if (!info.isFile()) throw new Error(`label file '${labelFilename}' is not a file`);
    if (info.size > MAX_LABEL_FILE_BYTES) throw new Error(`label file '${labelFilename}' has ${info.size} bytes, more than the ${MAX_LABEL_FILE_BYTES} a label file may hold`);
    // One label a line, as Triton reads them (a last line without a newline counts; a CR before the newline is dropped).
    const lines = (await readFile(file, 'utf8')).split('\n').map((line) => line.replace(/\r$/, ''));
    if (lines.at(-1) === '') lines.pop();
    return lines;
  }

  async sha256(modelPath: string): Promise<string> {
    const hash = createHash('sha256');
    await pipeline(createReadStream(modelPath), hash);
    return hash.digest('hex');
  }

  async scan(): Promise<ModelDirectory[]> {
    const entries = await readdir(this.root, { withFileTypes: true });
    const names = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
    return Promise.all(
      names.map((name) =>
        // One unreadable directory (lost+found, permissions) makes one UNAVAILABLE model, not a failed start.
        this.readModel(name).catch((error: Error): ModelDirectory => ({ name, versions: [], config: { ok: false, reason: `the model directory cannot be read: ${this.withoutPaths(error.message)}` } })),
      ),
    );
  }

  async removeAbandonedUploads(): Promise<string[]> {
    const removed: string[] = [];
    const models = (await readdir(this.root, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.'));
    for (const model of models) {
      const dir = join(this.root, model.name);
      const entries = await readdir(dir).catch(() => undefined);
      if (!entries) continue;
      const staged = entries.filter((name) => name.startsWith(UPLOAD_PREFIX));
      for (const name of staged) {
        await rm(join(dir, name), { recursive: true, force: true });
        removed.push(join(dir, name));
      }
      if (staged.length > 0 && staged.length === entries.length) {
        await rm(dir, { recursive: true, force: true });
        removed.push(dir);
      }
    }
    return removed;
  }

  parseConfig(text: string): DeclaredModelConfig {
    return parseModelConfig(text);
  }

  async scanModel(name: string): Promise<ModelDirectory | undefined> {
    // Names reach here validated (no separators, no dot segments); a symlink could still lead out.
    try {
      const root = await realpath(this.root);
      const resolved = await realpath(join(root, name));
      if (!resolved.startsWith(root + sep)) {
        throw new DomainError('REGISTRY.INVALID_NAME', `model directory '${name}' resolves outside the model repository`);
      }
      return await this.readModel(name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  private async readModel(name: string): Promise<ModelDirectory> {
    const dir = join(this.root, name);
    const entries = await readdir(dir, { withFileTypes: true });
    const config = await this.readConfig(join(dir, CONFIG_FILE));
    const fileName = this.modelFileOf(config);
    // Like Triton, directories whose name is not a positive integer are not versions and are ignored.
    const versions: VersionDirectory[] = entries
      .filter((e) => e.isDirectory() && /^[1-9]\d*$/.test(e.name) && Number.isSafeInteger(Number(e.name)))
      .map((e) => ({ version: Number(e.name), modelPath: join(dir, e.name, fileName) }));
    return { name, versions, config };
  }

  /**
   * The model file of a version of a model with this configuration: its backend's. A configuration
   * that names no backend served here is refused when a version loads (naming what is served);
   * its versions are named with the default backend's file until then.
   */
  private modelFileOf(config: ModelDirectory['config']): string {
    const choice = config.ok ? config.declared : {};
    try {
      return this.backends.forConfig(choice).modelFileName;
    } catch {
      return this.backends.forConfig({}).modelFileName;
    }
  }

  private async readConfig(path: string): Promise<ModelDirectory['config']> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, declared: {} };
      return { ok: false, reason: `${CONFIG_FILE} cannot be read: ${this.withoutPaths((error as Error).message)}` };
    }
    try {
      return { ok: true, declared: parseModelConfig(text) };
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
  }
}

function versionExists(name: string, version: number): DomainError {
  return new DomainError('REGISTRY.VERSION_EXISTS', `model '${name}' already has version ${version} in the repository; versions are never overwritten: upload a new version number`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Makes a rename in `dir` durable. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
