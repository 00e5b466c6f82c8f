import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    const repository = new FileSystemModelRepository(dir);
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
