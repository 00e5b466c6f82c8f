// FileModelStateStore on a real directory: files, revisions, compare-and-set, odd names, leftovers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { FileModelStateStore, fileNameOf } from '../../../src/infra/persistence/file-model-state-store.js';
import type { ModelState } from '../../../src/domain/registry/model-state-store.port.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';

const aState = (name: string, overrides: Partial<ModelState> = {}): ModelState => ({
  name,
  loadedVersions: [2],
  unloadedVersions: [1],
  ...overrides,
});

async function assertConflict(promise: Promise<unknown>, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
    assert.equal(error.code, 'REGISTRY.STATE_CONFLICT', error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('FileModelStateStore', () => {
  let sandbox: string;
  let count = 0;
  /** A fresh state directory (not created yet) for each test. */
  const newDirectory = () => join(sandbox, `state-${++count}`);

  before(async () => {
    sandbox = await mkdtemp(join(tmpdir(), 'model-state-store-'));
  });
  after(() => rm(sandbox, { recursive: true, force: true }));

  it('creates a missing directory (and its parents) with mode 0700, and finds nothing in it', async () => {
    const directory = join(newDirectory(), 'nested', 'state');
    const store = new FileModelStateStore(directory);
    assert.deepEqual((await store.loadAll()).states, []);
    const info = await stat(directory);
    assert.ok(info.isDirectory());
    if (process.platform !== 'win32') assert.equal(info.mode & 0o777, 0o700);
  });

  it('creates the directory on the first save too', async () => {
    const directory = newDirectory();
    await new FileModelStateStore(directory).save(aState('resnet'), 0);
    assert.deepEqual(await readdir(directory), [fileNameOf('resnet')]);
  });

  it('gives back what was saved, after a restart (a new store on the same directory)', async () => {
    const directory = newDirectory();
    const full = aState('resnet', { defaultVersion: 2, configOverride: '{"max_batch_size":4}' });
    const minimal = aState('bert', { loadedVersions: [], unloadedVersions: [] });
    const store = new FileModelStateStore(directory);
    assert.deepEqual(await store.save(full, 0), { revision: 1, state: full });
    assert.deepEqual(await store.save(minimal, 0), { revision: 1, state: minimal });

    assert.deepEqual((await new FileModelStateStore(directory).loadAll()).states, [
      { revision: 1, state: minimal },
      { revision: 1, state: full },
    ]);
  });

  it('stores only the fields of a model state, and no undefined optional field', async () => {
    const directory = newDirectory();
    const store = new FileModelStateStore(directory);
    const withExtras = { ...aState('resnet'), defaultVersion: undefined, extra: 'not a state field' } as ModelState;
    assert.deepEqual(await store.save(withExtras, 0), { revision: 1, state: aState('resnet') });
    assert.deepEqual((await store.loadAll()).states, [{ revision: 1, state: aState('resnet') }]);
    const onDisk = JSON.parse(await readFile(join(directory, fileNameOf('resnet')), 'utf8'));
    assert.deepEqual(onDisk, { revision: 1, state: aState('resnet') });
  });

  it('counts revisions up by one per save, per model', async () => {
    const store = new FileModelStateStore(newDirectory());
    assert.equal((await store.save(aState('a', { loadedVersions: [1] }), 0)).revision, 1);
    assert.equal((await store.save(aState('a', { loadedVersions: [2] }), 1)).revision, 2);
    assert.equal((await store.save(aState('b'), 0)).revision, 1);
    assert.equal((await store.save(aState('a', { loadedVersions: [3] }), 2)).revision, 3);
    assert.deepEqual((await store.loadAll()).states, [
      { revision: 3, state: aState('a', { loadedVersions: [3] }) },
      { revision: 1, state: aState('b') },
    ]);
  });

  it('refuses a save against a stale revision, and keeps the stored state', async () => {
    const store = new FileModelStateStore(newDirectory());
    await store.save(aState('resnet', { loadedVersions: [1] }), 0);
    await store.save(aState('resnet', { loadedVersions: [2] }), 1);

    await assertConflict(store.save(aState('resnet', { loadedVersions: [3] }), 1), /'resnet' is at revision 2, not 1/);
    assert.deepEqual((await store.loadAll()).states, [{ revision: 2, state: aState('resnet', { loadedVersions: [2] }) }]);
  });

  it('refuses a first save (expected revision 0) when a state is stored, and a later one when none is', async () => {
    const store = new FileModelStateStore(newDirectory());
    await store.save(aState('resnet', { loadedVersions: [1] }), 0);

    await assertConflict(store.save(aState('resnet', { loadedVersions: [9] }), 0), /is at revision 1, not 0/);
    await assertConflict(store.save(aState('bert'), 1), /'bert' has no stored state, not 1/);
    assert.deepEqual((await store.loadAll()).states, [{ revision: 1, state: aState('resnet', { loadedVersions: [1] }) }]);
  });

  it('refuses an expected revision that is not a non-negative integer, and a state it could not read back', async () => {
    const directory = newDirectory();
    const store = new FileModelStateStore(directory);
    await assert.rejects(store.save(aState('resnet'), -1), RangeError);
    await assert.rejects(store.save(aState('resnet'), 1.5), RangeError);
    await assert.rejects(store.remove('resnet', Number.NaN), RangeError);
    await assert.rejects(store.save(aState('resnet', { loadedVersions: [0] }), 0), /'resnet' is not a stored model state: state\.loadedVersions\.0/);
    await assert.rejects(store.save(aState(''), 0), /state\.name/);
    assert.deepEqual((await store.loadAll()).states, []);
  });

  it('removes a state only at its current revision', async () => {
    const directory = newDirectory();
    const store = new FileModelStateStore(directory);
    await store.save(aState('resnet'), 0);
    await store.save(aState('resnet'), 1);
    await store.save(aState('bert'), 0);

    await assertConflict(store.remove('resnet', 1), /is at revision 2, not 1/);
    await assertConflict(store.remove('resnet', 0));
    assert.equal((await store.loadAll()).states.length, 2);

    await store.remove('resnet', 2);
    assert.deepEqual((await store.loadAll()).states, [{ revision: 1, state: aState('bert') }]);
    assert.deepEqual(await readdir(directory), [fileNameOf('bert')]);

    await assertConflict(store.remove('resnet', 2), /has no stored state, not 2/);
    await store.remove('resnet', 0); // nothing stored and nothing expected: nothing to do
    assert.equal((await store.save(aState('resnet'), 0)).revision, 1, 'a removed model starts again at revision 1');
  });

  it('keeps any model name inside the directory: spaces, unicode, dots, slashes, case, length', async () => {
    const parent = newDirectory();
    const directory = join(parent, 'state');
    const names = ['model a', 'modèle 日本語 🚀', 'v1.2.3', '.', '..', '../escape', '../../etc/passwd', 'a/b', 'a\\b', 'A', 'a', '%2e%2e', 'x'.repeat(255), 'é'.repeat(200)];
    const store = new FileModelStateStore(directory);
    for (const name of names) await store.save(aState(name), 0);

    const loaded = (await new FileModelStateStore(directory).loadAll()).states;
    assert.deepEqual(loaded.map((stored) => stored.state.name).sort(), [...names].sort());
    assert.ok(loaded.every((stored) => stored.revision === 1));
    const files = await readdir(directory, { withFileTypes: true });
    assert.equal(files.length, names.length, 'one file per name, all directly in the directory');
    for (const file of files) {
      assert.ok(file.isFile(), file.name);
      assert.match(file.name, /^[A-Za-z0-9_-]+\.[0-9a-f]{64}\.json$/);
      assert.ok(file.name.length <= 134, file.name);
    }
    assert.deepEqual(await readdir(parent), ['state'], 'nothing written next to the directory');

    await store.remove('..', 1);
    await store.remove('../escape', 1);
    assert.equal((await store.loadAll()).states.length, names.length - 2);
  });

  it('leaves no temporary file behind', async () => {
    const directory = newDirectory();
    const store = new FileModelStateStore(directory);
    for (let revision = 0; revision < 20; revision++) {
      await store.save(aState('resnet', { loadedVersions: [revision + 1] }), revision);
      await store.save(aState(`other-${revision}`), 0);
    }
    await assertConflict(store.save(aState('resnet'), 0));
    for (let i = 0; i < 10; i++) await store.remove(`other-${i}`, 1);
    const files = await readdir(directory);
    assert.equal(files.length, 11);
    assert.deepEqual(files.filter((file) => !file.endsWith('.json') || file.startsWith('.')), []);
  });

  describe('concurrent writes of one model in one process', () => {
    it('let exactly one of two saves with the same expected revision win; the other gets STATE_CONFLICT', async () => {
      const store = new FileModelStateStore(newDirectory());
      for (let round = 0; round < 10; round++) {
        const first = aState('resnet', { loadedVersions: [round * 2 + 1] });
        const second = aState('resnet', { loadedVersions: [round * 2 + 2] });
        const results = await Promise.allSettled([store.save(first, round), store.save(second, round)]);

        const won = results.filter((result) => result.status === 'fulfilled');
        const lost = results.filter((result) => result.status === 'rejected');
        assert.equal(won.length, 1, `round ${round}: one save wins`);
        assert.equal(lost.length, 1, `round ${round}: one save loses`);
        await assertConflict(Promise.reject(lost[0]!.reason));
        const [stored] = (await store.loadAll()).states;
        assert.deepEqual(stored, won[0]!.value);
        assert.equal(stored!.revision, round + 1);
      }
    });

    it('serialize saves from two stores on the same directory as well', async () => {
      const directory = newDirectory();
      const stores = [new FileModelStateStore(directory), new FileModelStateStore(directory)];
      const results = await Promise.allSettled(stores.map((store, i) => store.save(aState('resnet', { loadedVersions: [i + 1] }), 0)));
      assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
      const lost = results.find((result) => result.status === 'rejected');
      await assertConflict(Promise.reject(lost!.reason));
    });

    it('run in call order, so saves issued with successive revisions all succeed', async () => {
      const store = new FileModelStateStore(newDirectory());
      const saves = Array.from({ length: 20 }, (_, revision) => store.save(aState('resnet', { loadedVersions: [revision + 1] }), revision));
      const stored = await Promise.all(saves);
      assert.deepEqual(stored.map((s) => s.revision), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.deepEqual((await store.loadAll()).states, [{ revision: 20, state: aState('resnet', { loadedVersions: [20] }) }]);
    });

    it('serialize a remove with the saves around it', async () => {
      const store = new FileModelStateStore(newDirectory());
      const results = await Promise.allSettled([
        store.save(aState('resnet'), 0),
        store.remove('resnet', 1),
        store.save(aState('resnet'), 1),
        store.save(aState('resnet', { loadedVersions: [7] }), 0),
      ]);
      assert.deepEqual(results.map((result) => result.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      await assertConflict(Promise.reject((results[2] as PromiseRejectedResult).reason));
      assert.deepEqual((await store.loadAll()).states, [{ revision: 1, state: aState('resnet', { loadedVersions: [7] }) }]);
    });
  });

  describe('a state file changed from outside', () => {
    const corrupt = async (content: string, name = 'resnet') => {
      const directory = newDirectory();
      const store = new FileModelStateStore(directory);
      await store.save(aState('bert'), 0);
      const path = join(directory, fileNameOf(name));
      await writeFile(path, content);
      return { store, path };
    };
    const escape = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

    /** What loadAll reports of the file, and that the file was set aside under that name, unchanged. */
    const assertSetAside = async (store: FileModelStateStore, path: string, content: string, reason: RegExp, knownNames = ['resnet']) => {
      const { states, unreadable } = await store.loadAll(knownNames);
      assert.deepEqual(states, [{ revision: 1, state: aState('bert') }], 'the other models keep their states');
      assert.equal(unreadable.length, 1);
      const [entry] = unreadable;
      assert.equal(entry!.name, knownNames.includes('resnet') ? 'resnet' : undefined);
      assert.match(entry!.reason, reason);
      assert.ok(!entry!.reason.includes(dirname(path)), `the reason names no path: ${entry!.reason}`);
      assert.match(entry!.keptAs, new RegExp(`^${escape(basename(path))}\\.unreadable-\\d+$`));
      assert.equal(await readFile(join(dirname(path), entry!.keptAs), 'utf8'), content, 'kept as it was, for an operator to look at');
      await assert.rejects(stat(path), { code: 'ENOENT' });
      assert.deepEqual((await store.loadAll(knownNames)).unreadable, [], 'reported once');
      assert.equal((await store.save(aState('resnet'), 0)).revision, 1, 'the model starts afresh');
    };

    it('sets aside a file that is not JSON (e.g. truncated), naming it by its file name only', async () => {
      const content = JSON.stringify({ revision: 1, state: aState('resnet') }).slice(0, 30);
      const { store, path } = await corrupt(content);
      await assertSetAside(store, path, content, new RegExp(`^model state file ${escape(basename(path))} \\(in STATE_DIR\\) is not valid JSON`));
    });

    it('sets aside a file whose JSON is not a stored state, naming the field', async () => {
      for (const [content, field] of [
        [JSON.stringify({ revision: 0, state: aState('resnet') }), 'revision'],
        [JSON.stringify({ revision: 1, state: { ...aState('resnet'), loadedVersions: 'all' } }), 'state\\.loadedVersions'],
        [JSON.stringify({ revision: 1, state: aState('resnet'), comment: 'hand-edited' }), '\\(root\\)'],
        ['{"revision":1,"state":{"name":"resnet","loadedVersions":[2],"unloadedVersions":[1],"__proto__":{"defaultVersion":9}}}', 'state'],
        ['{"__proto__":{"revision":1,"state":{"name":"resnet","loadedVersions":[2],"unloadedVersions":[1]}}}', ''],
      ] as const) {
        const { store, path } = await corrupt(content);
        await assertSetAside(store, path, content, new RegExp(`is not a stored model state: ${field}`));
      }
    });

    it('sets aside a file holding another model than its name says (renamed or copied)', async () => {
      const content = JSON.stringify({ revision: 1, state: aState('bert') });
      const { store, path } = await corrupt(content);
      await assertSetAside(store, path, content, /holds the state of model 'bert'/);
    });

    it('reports a file of a model it was not told about without a name', async () => {
      const { store, path } = await corrupt('{');
      await assertSetAside(store, path, '{', /is not valid JSON/, []);
    });

    it('refuses a save or remove of that model with the same error, rather than overwriting it', async () => {
      const { store, path } = await corrupt('{');
      await assert.rejects(store.save(aState('resnet'), 0), new RegExp(`model state file ${escape(basename(path))} \\(in STATE_DIR\\) is not valid JSON`));
      await assert.rejects(store.remove('resnet', 1), new RegExp(escape(basename(path))));
      assert.equal(await readFile(path, 'utf8'), '{');
      assert.equal((await store.save(aState('bert'), 1)).revision, 2, 'other models are still written');
    });

    it('ignores files and directories that are not state files (lost+found, notes)', async () => {
      const directory = newDirectory();
      const store = new FileModelStateStore(directory);
      await store.save(aState('resnet'), 0);
      await writeFile(join(directory, 'README.txt'), 'notes');
      await writeFile(join(directory, 'resnet.json'), 'not ours');
      await mkdir(join(directory, 'lost+found'));
      assert.deepEqual((await store.loadAll()).states, [{ revision: 1, state: aState('resnet') }]);
    });
  });

  describe('temporary files left over by a crash', () => {
    /** A temporary file as a writer with `pid` leaves it when killed between write and rename. */
    const leftover = async (directory: string, pid: number, content: string) => {
      const path = join(directory, `.${fileNameOf('resnet')}.${pid}.0123456789abcdef.1.tmp`);
      await writeFile(path, content);
      return path;
    };

    it('are ignored by loadAll, even a half-written one', async () => {
      const directory = newDirectory();
      const store = new FileModelStateStore(directory);
      await store.save(aState('resnet'), 0);
      await leftover(directory, process.pid, '{"revision":2,"state":{"na');
      assert.deepEqual((await new FileModelStateStore(directory).loadAll()).states, [{ revision: 1, state: aState('resnet') }]);
      assert.equal((await store.save(aState('resnet'), 1)).revision, 2);
    });

    it('are removed when stale (their writer is gone, or they are old), kept while their writer may still rename them', async () => {
      const directory = newDirectory();
      const store = new FileModelStateStore(directory);
      await store.save(aState('resnet'), 0);
      const ofDeadWriter = await leftover(directory, 2 ** 30 + 7, '{');
      const ofLiveWriter = await leftover(directory, process.ppid, '{');
      const old = join(directory, `.${fileNameOf('resnet')}.${process.ppid}.00000000.2.tmp`);
      await writeFile(old, '{');
      const anHourAgo = new Date(Date.now() - 3_600_000);
      await utimes(old, anHourAgo, anHourAgo);

      assert.deepEqual((await store.loadAll()).states, [{ revision: 1, state: aState('resnet') }]);
      const files = await readdir(directory);
      assert.ok(!files.includes(ofDeadWriter.slice(directory.length + 1)), 'the dead writer\'s file is removed');
      assert.ok(!files.includes(old.slice(directory.length + 1)), 'the old file is removed');
      assert.ok(files.includes(ofLiveWriter.slice(directory.length + 1)), 'the live writer\'s recent file is kept');
    });
  });
});
