// Child process of test/integration/persistence/kill-during-write.test.ts: saves model states in a
// tight loop until it is killed. Usage: node state-writer.js <directory> <model name>...
// Every state is derived from its revision (writtenState), so the test can tell a state that was
// written whole from any other. Prints `ready` once it has read the store, then `saved <i> <revision>`
// after each save has resolved (i: the index of the model in the arguments).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileModelStateStore } from '../../src/infra/persistence/file-model-state-store.js';
import type { ModelState } from '../../src/domain/registry/model-state-store.port.js';

/** The state the writer saves as `revision` of model `name`: it grows by 100 characters a revision. */
export function writtenState(name: string, revision: number): ModelState {
  return {
    name,
    loadedVersions: [revision],
    unloadedVersions: [revision + 1],
    defaultVersion: revision,
    configOverride: 'x'.repeat(revision * 100),
  };
}

async function main(directory: string, names: string[]): Promise<void> {
  const store = new FileModelStateStore(directory);
  const revisions = new Map(names.map((name) => [name, 0]));
  for (const stored of (await store.loadAll()).states) revisions.set(stored.state.name, stored.revision);
  process.stdout.write('ready\n');
  for (let turn = 0; ; turn++) {
    const index = turn % names.length;
    const name = names[index]!;
    const revision = revisions.get(name)!;
    const saved = await store.save(writtenState(name, revision + 1), revision);
    revisions.set(name, saved.revision);
    process.stdout.write(`saved ${index} ${saved.revision}\n`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [directory, ...names] = process.argv.slice(2);
  if (!directory || names.length === 0) {
    process.stderr.write('usage: state-writer.js <directory> <model name>...\n');
    process.exit(2);
  }
  main(directory, names).catch((error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
