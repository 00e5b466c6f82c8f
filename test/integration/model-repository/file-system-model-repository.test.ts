import { SERVED_BACKENDS } from '../../support/model-backends.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileSystemModelRepository } from '../../../src/infra/model-repository/file-system-model-repository.js';
import { makeRepository, startTestServer } from '../../support/test-server.js';
import { classifierModel } from '../../../scripts/build-models.js';
import { ModelRegistry } from '../../../src/modules/registry/model-registry.js';

describe('FileSystemModelRepository.sha256', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'onnx-serving-sha-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('is the sha256 of the file, hex', async () => {
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
    const file = join(dir, 'model.onnx');
    await writeFile(file, bytes);
    const repository = new FileSystemModelRepository(dir, SERVED_BACKENDS);
    assert.equal(await repository.sha256(file), createHash('sha256').update(bytes).digest('hex'));
  });

  it('a loaded version records the sha256 of the file it was loaded from', async () => {
    const onnx = classifierModel();
    const server = await startTestServer(await makeRepository([{ name: 'classifier', onnx }]));
    try {
      const version = server.server.app.get(ModelRegistry).get('classifier').version(1);
      assert.equal(version.state, 'READY');
      assert.equal(version.fileSha256, createHash('sha256').update(onnx).digest('hex'));
    } finally {
      await server.close();
    }
  });
});

describe('FileSystemModelRepository.readLabels', () => {
  let root: string;
  let repository: FileSystemModelRepository;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'onnx-serving-labels-'));
    await mkdir(join(root, 'm', 'labels'), { recursive: true });
    await mkdir(join(root, 'other'));
    await writeFile(join(root, 'm', 'labels.txt'), 'cat\r\ndog\n\nbird');
    await writeFile(join(root, 'm', 'labels', 'nested.txt'), 'a\nb\n');
    await writeFile(join(root, 'other', 'secret.txt'), 'x\n');
    await symlink(join(root, 'other', 'secret.txt'), join(root, 'm', 'link.txt'));
    repository = new FileSystemModelRepository(root, SERVED_BACKENDS);
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('reads one label a line (CR dropped, an empty line kept, the last line without a newline counted)', async () => {
    assert.deepEqual(await repository.readLabels('m', 'labels.txt'), ['cat', 'dog', '', 'bird']);
    assert.deepEqual(await repository.readLabels('m', 'labels/nested.txt'), ['a', 'b']);
  });

  it('refuses a file outside the model directory, by path or by symlink, and names a missing one without the server path', async () => {
    await assert.rejects(repository.readLabels('m', '../other/secret.txt'), /label file '\.\.\/other\/secret\.txt' is outside the model directory/);
    await assert.rejects(repository.readLabels('m', 'link.txt'), /label file 'link\.txt' is outside the model directory/);
    await assert.rejects(repository.readLabels('m', join(root, 'other', 'secret.txt')), /is outside the model directory/);
    await assert.rejects(repository.readLabels('m', 'labels'), /label file 'labels' is not a file/);
    await assert.rejects(repository.readLabels('m', 'missing.txt'), (error: Error) => {
      assert.match(error.message, /label file 'missing\.txt' cannot be read: ENOENT/);
      assert.ok(!error.message.includes(root), error.message);
      return true;
    });
  });
});

describe('FileSystemModelRepository.removeAbandonedUploads', () => {
  it('removes staged uploads, and a model directory that holds nothing else, and nothing more', async () => {
    const root = await mkdtemp(join(tmpdir(), 'onnx-serving-uploads-'));
    try {
      await mkdir(join(root, 'fresh', '.upload-1'), { recursive: true });
      await writeFile(join(root, 'fresh', '.upload-1', 'model.onnx'), 'partial');
      await mkdir(join(root, 'served', '1'), { recursive: true });
      await writeFile(join(root, 'served', '1', 'model.onnx'), 'model');
      await mkdir(join(root, 'served', '.upload-2'), { recursive: true });
      await mkdir(join(root, 'configured'), { recursive: true });
      await writeFile(join(root, 'configured', 'config.json'), '{}');

      const removed = await new FileSystemModelRepository(root, SERVED_BACKENDS).removeAbandonedUploads();

      assert.deepEqual(removed.sort(), [join(root, 'fresh'), join(root, 'fresh', '.upload-1'), join(root, 'served', '.upload-2')].sort());
      assert.deepEqual((await readdir(root)).sort(), ['configured', 'served']);
      assert.deepEqual(await readdir(join(root, 'served')), ['1']);
      assert.deepEqual(await readdir(join(root, 'configured')), ['config.json']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('FileSystemModelRepository.withoutPaths', () => {
  let parent: string;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'onnx-serving-paths-'));
    await mkdir(join(parent, 'real', 'models', 'classifier', '1'), { recursive: true });
    await symlink(join(parent, 'real', 'models'), join(parent, 'linked'));
  });
  after(() => rm(parent, { recursive: true, force: true }));

  it('names paths inside the repository by their name there, however the root was written or resolved', () => {
    const linked = join(parent, 'linked');
    const repository = new FileSystemModelRepository(linked, SERVED_BACKENDS);
    const real = join(parent, 'real', 'models');
    const text = `Load model from ${join(linked, 'classifier', '1', 'model.onnx')} failed; resolved ${join(real, 'classifier', 'warmup', 'x.bin')}; staged ${join(linked, 'classifier', '.upload-0123456789abcdef', 'weights.bin')}`;
    assert.equal(repository.withoutPaths(text), 'Load model from classifier/1/model.onnx failed; resolved classifier/warmup/x.bin; staged classifier/(upload)/weights.bin');
  });

  it('also when the root is relative', () => {
    const repository = new FileSystemModelRepository(`.${sep}models`, SERVED_BACKENDS);
    assert.equal(repository.withoutPaths(`open 'models${sep}m${sep}1${sep}model.onnx' and '${resolve('models', 'm', 'config.json')}'`), "open 'm/1/model.onnx' and 'm/config.json'");
    assert.equal(repository.withoutPaths('nothing to change'), 'nothing to change');
  });
});
