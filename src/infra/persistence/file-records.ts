import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { DomainError } from '../../domain/shared/domain-error.js';
import type { RecordChange, RecordKind, StoredRecord, UnreadableRecord } from './revisioned-records.js';
import { schemaErrorMessage } from '../validation/schema-error-message.js';

/**
 * Revisioned records of one kind (model states, rollouts) kept as one JSON file per record under one
 * directory (under the server's STATE_DIR), holding `{ revision, state }`: the embedded stores' engine.
 *
 * File names: a record's name is never used as a path. The file is `<slug>.<sha256>.json`, where the
 * sha256 (hex) of the UTF-8 name makes it unique and the slug (the name's ASCII letters, digits,
 * `-` and `_`, others replaced by `_`, at most 64 characters) only makes `ls` readable. So any name
 * (spaces, unicode, `/`, `..`, names differing only by case, names as long as a directory name can
 * be) maps to a file of at most 134 characters of [A-Za-z0-9_.-] inside the directory. The file holds
 * the name itself; reading checks that it maps back to its file name.
 *
 * Writes are atomic and durable: a temporary file in the same directory (`.<file>.<pid>.<token>.<n>.tmp`)
 * is written and fsynced, renamed over the target, and the directory is fsynced. A crash (even
 * kill -9 or a power loss) leaves either the old file or the new one, never a mix; a leftover temporary
 * file is ignored, and removed by `loadAll` once stale. Since a crash cannot produce a half-written
 * target, a target file that does not parse was changed from outside: `loadAll` sets it aside
 * (renamed `<file>.unreadable-<ms>`) and reports it, so that its model starts afresh (the server
 * logs it at error level) and the other models keep their states. Errors name state files by their
 * name in STATE_DIR, never by their path.
 *
 * Compare-and-set: inside one process, saves and removes of one model run one after the other (per
 * model, across every store on the same directory), so the revision check is exact. Across processes
 * it is best effort: two processes can both read revision n and both rename revision n + 1 (the last
 * one wins, whole). These stores are for one server; replicas share the distributed store.
 *
 * Changes made by another process (an operator's edit, a second server on the same directory) are
 * seen by polling (`watch`): file modification times and sizes, and the revision of what changed.
 */
export class FileRecords<T extends { readonly name: string }> {
  private readonly directory: string;
  private ready?: Promise<void>;

  constructor(
    directory: string,
    private readonly kind: RecordKind<T>,
  ) {
    this.directory = resolve(directory);
  }

  async loadAll(knownNames: readonly string[] = []): Promise<{ states: StoredRecord<T>[]; unreadable: UnreadableRecord[] }> {
    await this.ensureDirectory().catch(rethrowWithoutPaths);
    const entries = await readdir(this.directory, { withFileTypes: true }).catch(rethrowWithoutPaths);
    const owners = new Map(knownNames.map((name) => [fileNameOf(name), name]));
    const states: StoredRecord<T>[] = [];
    const unreadable: UnreadableRecord[] = [];
    await Promise.all(
      entries.map(async (entry) => {
        if (!entry.isFile()) return;
        if (TEMP_FILE.test(entry.name)) {
          await this.removeIfStale(entry.name);
          return;
        }
        if (!STATE_FILE.test(entry.name)) return; // not ours (a README, an editor's backup, a state set aside): left alone
        try {
          const stored = await this.read(entry.name);
          if (stored) states.push(stored);
        } catch (error) {
          unreadable.push({ name: owners.get(entry.name), keptAs: await this.setAside(entry.name, error), reason: (error as Error).message });
        }
      }),
    );
    states.sort((a, b) => (a.state.name < b.state.name ? -1 : a.state.name > b.state.name ? 1 : 0));
    return { states, unreadable };
  }

  /**
   * Moves a state file that does not parse (changed from outside) out of the way, as
   * `<file>.unreadable-<ms since 1970>`, so that its model starts afresh and its next save succeeds;
   * the file is kept for an operator to look at. A file that cannot be read at all stays where it
   * is (the saves of its model keep failing, saying why). Returns the name it is kept under.
   */
  private async setAside(fileName: string, error: unknown): Promise<string> {
    if (!(error instanceof UnreadableStateError)) return fileName;
    const aside = `${fileName}.unreadable-${Date.now()}`;
    try {
      await rename(join(this.directory, fileName), join(this.directory, aside));
      await syncDirectory(this.directory);
      return aside;
    } catch {
      return fileName;
    }
  }

  /** The stored record of `name`, undefined when there is none (or it cannot be read back). */
  async load(name: string): Promise<StoredRecord<T> | undefined> {
    return this.read(fileNameOf(name)).catch((error: unknown) => {
      if (error instanceof UnreadableStateError) return undefined;
      throw error;
    });
  }

  async save(state: T, expectedRevision: number): Promise<StoredRecord<T>> {
    requireRevision(expectedRevision);
    const fileName = fileNameOf(state.name);
    const text = JSON.stringify({ revision: expectedRevision + 1, state: this.kind.plain(state) });
    // What loadAll will return, and a refusal of a state it could not read back.
    const stored = this.parse(text, this.kind.describe(state.name));
    await this.ensureDirectory().catch(rethrowWithoutPaths);
    return this.exclusive(fileName, async () => {
      await this.requireRevision(fileName, state.name, expectedRevision);
      await this.writeAtomically(fileName, text).catch(rethrowWithoutPaths);
      return stored;
    });
  }

  async remove(name: string, expectedRevision: number): Promise<void> {
    requireRevision(expectedRevision);
    const fileName = fileNameOf(name);
    await this.ensureDirectory().catch(rethrowWithoutPaths);
    await this.exclusive(fileName, async () => {
      await this.requireRevision(fileName, name, expectedRevision);
      if (expectedRevision === 0) return; // nothing stored, nothing to forget
      await unlink(join(this.directory, fileName)).catch(rethrowWithoutPaths);
      await syncDirectory(this.directory).catch(rethrowWithoutPaths);
    });
  }

  private async requireRevision(fileName: string, name: string, expectedRevision: number): Promise<void> {
    const current = (await this.read(fileName))?.revision ?? 0;
    if (current !== expectedRevision) {
      const stored = current === 0 ? 'has no stored state' : `is at revision ${current}`;
      throw new DomainError('REGISTRY.STATE_CONFLICT', `${this.kind.describe(name)} ${stored}, not ${expectedRevision}: it was changed meanwhile; read it again and retry`);
    }
  }

  /**
   * The stored state in `fileName`, undefined when there is none. Throws UnreadableStateError when
   * the file is not one this store wrote, and an error naming the file (in STATE_DIR, never by its
   * path) when it cannot be read.
   */
  private async read(fileName: string): Promise<StoredRecord<T> | undefined> {
    const path = join(this.directory, fileName);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`${this.kind.fileWord} ${fileName} (in ${this.kind.where}) cannot be read: ${withoutPaths(error)}`);
    }
    const stored = this.parse(text, `${this.kind.fileWord} ${fileName} (in ${this.kind.where})`);
    if (fileNameOf(stored.state.name) !== fileName) {
      throw new UnreadableStateError(
        `${this.kind.fileWord} ${fileName} (in ${this.kind.where}) holds ${this.kind.describe(stored.state.name)}, which belongs in ${fileNameOf(stored.state.name)}: ` +
          'the file was renamed or copied from outside',
      );
    }
    return stored;
  }

  private parse(text: string, what: string): StoredRecord<T> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new UnreadableStateError(`${what} is not valid JSON (${(error as Error).message}); this store never leaves a partial file, so it was changed from outside`);
    }
    const parsed = this.kind.schema.safeParse(json);
    if (!parsed.success) {
      throw new UnreadableStateError(`${what} is not a stored ${this.kind.fileWord.replace(/ file$/, '')}: ${schemaErrorMessage(parsed.error)}`);
    }
    return { revision: parsed.data.revision, state: this.kind.plain(parsed.data.state) };
  }

  /**
   * Calls `listener` with each record whose file changed (a new revision) or went away since the
   * previous poll, every `intervalMs`, until the returned function is called. Files that cannot be
   * read back are skipped (loadAll sets them aside). The first poll only takes stock.
   */
  watch(listener: (change: RecordChange<T>) => void, intervalMs: number): () => void {
    const seen = new Map<string, { signature: string; revision: number; name: string }>();
    let first = true;
    let polling = false;
    const poll = async () => {
      if (polling) return;
      polling = true;
      try {
        const entries = await readdir(this.directory, { withFileTypes: true }).catch(() => []);
        const present = new Set<string>();
        for (const entry of entries) {
          if (!entry.isFile() || !STATE_FILE.test(entry.name)) continue;
          present.add(entry.name);
          const info = await stat(join(this.directory, entry.name)).catch(() => undefined);
          if (!info) continue;
          const signature = `${info.mtimeMs}:${info.size}`;
          const before = seen.get(entry.name);
          if (before?.signature === signature) continue;
          const stored = await this.read(entry.name).catch(() => undefined);
          if (!stored) continue;
          seen.set(entry.name, { signature, revision: stored.revision, name: stored.state.name });
          if (!first && before?.revision !== stored.revision) listener({ name: stored.state.name, stored });
        }
        for (const [fileName, { name }] of seen) {
          if (present.has(fileName)) continue;
          seen.delete(fileName);
          if (!first) listener({ name });
        }
        first = false;
      } finally {
        polling = false;
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private async writeAtomically(fileName: string, text: string): Promise<void> {
    const tempPath = join(this.directory, `.${fileName}.${process.pid}.${PROCESS_TOKEN}.${++tempCounter}.tmp`);
    writing.add(tempPath);
    try {
      const handle = await open(tempPath, 'wx', 0o600);
      try {
        await handle.writeFile(text, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tempPath, join(this.directory, fileName));
    } catch (error) {
      await unlink(tempPath).catch(() => undefined);
      throw error;
    } finally {
      writing.delete(tempPath);
    }
    await syncDirectory(this.directory);
  }

  /**
   * A temporary file is stale when no write can still rename it: one of this process that is not
   * being written, or one of another process that is gone (or older than any write takes).
   */
  private async removeIfStale(fileName: string): Promise<void> {
    const path = join(this.directory, fileName);
    const [, pid, token] = TEMP_FILE.exec(fileName)!;
    let stale: boolean;
    if (token === PROCESS_TOKEN) {
      stale = !writing.has(path);
    } else if (!isProcessAlive(Number(pid))) {
      stale = true;
    } else {
      const modified = await stat(path).then((s) => s.mtimeMs, () => undefined);
      stale = modified !== undefined && Date.now() - modified > STALE_TEMP_FILE_MS;
    }
    if (stale) await unlink(path).catch(() => undefined);
  }

  /** Creates the directory (0700) once; its new entries are made durable too. */
  private ensureDirectory(): Promise<void> {
    this.ready ??= (async () => {
      const firstCreated = await mkdir(this.directory, { recursive: true, mode: 0o700 });
      if (firstCreated === undefined) return;
      for (let created = this.directory; ; created = dirname(created)) {
        await syncDirectory(dirname(created));
        if (created === resolve(firstCreated)) break;
      }
    })().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

  /** Runs `work` after every earlier save or remove of the same file in this process has settled. */
  private exclusive<T>(fileName: string, work: () => Promise<T>): Promise<T> {
    const key = join(this.directory, fileName);
    const previous = chains.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    chains.set(key, tail);
    void tail.then(() => {
      if (chains.get(key) === tail) chains.delete(key);
    });
    return result;
  }
}

/** Temporary files of a live process older than this are left over from a process whose pid was reused. */
const STALE_TEMP_FILE_MS = 60_000;
const SLUG_LENGTH = 64;
const STATE_FILE = /^[A-Za-z0-9_-]{1,64}\.[0-9a-f]{64}\.json$/;
const TEMP_FILE = /^\.[A-Za-z0-9_-]{1,64}\.[0-9a-f]{64}\.json\.(\d+)\.([0-9a-f]+)\.\d+\.tmp$/;
/** Tells this process's temporary files from those of an earlier process that had the same pid (pid 1 in a container). */
const PROCESS_TOKEN = randomBytes(8).toString('hex');
let tempCounter = 0;
/** Temporary files being written by this process. */
const writing = new Set<string>();
/** Per state file (absolute path), the end of its queue of saves and removes. */
const chains = new Map<string, Promise<void>>();

/** The file name of a record; see the class comment. */
export function fileNameOf(name: string): string {
  const slug = name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, SLUG_LENGTH) || '_';
  const hash = createHash('sha256').update(name, 'utf8').digest('hex');
  return `${slug}.${hash}.json`;
}

/** A record file whose content is not one this store wrote: changed from outside. */
class UnreadableStateError extends Error {}

function requireRevision(expectedRevision: number): void {
  if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
    throw new RangeError(`expected revision ${expectedRevision} is not a non-negative integer`);
  }
}

/**
 * A file-system error's message without the paths it names (Node writes `ENOSPC: no space left on
 * device, open '/var/lib/state/...'`): the code and what failed, for messages that may reach a client.
 */
function withoutPaths(error: unknown): string {
  const { code, syscall, message } = error as NodeJS.ErrnoException;
  if (typeof code !== 'string' || typeof syscall !== 'string') return String(message ?? error);
  const cut = message.indexOf(`, ${syscall}`);
  return `${cut > 0 ? message.slice(0, cut) : code} (${syscall})`;
}

function rethrowWithoutPaths(error: unknown): never {
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (typeof code !== 'string' || typeof syscall !== 'string') throw error;
  throw Object.assign(new Error(`the model state store (STATE_DIR) failed: ${withoutPaths(error)}`), { code });
}

async function syncDirectory(directory: string): Promise<void> {
  if (process.platform === 'win32') return; // directories cannot be opened for fsync there
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false; // 0 and negatives would signal process groups
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
