// Warm-up samples run in the session workers: on every instance, and on an instance that replaces a
// lost one before it takes work. A sample that fails is an error naming it.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Logger } from '@nestjs/common';
import { parseIntModel } from '../../../scripts/build-models.js';
import type { WarmupSample } from '../../../src/domain/inference/inference-engine.port.js';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { SessionWorkerPool } from '../../../src/infra/onnx/session-worker-pool.js';
import { failIfWorkersOutliveTests, modelDirectory, runtimeOptions, tensor, runOne } from './onnx-fixtures.js';

Logger.overrideLogger(false);

/** One BYTES element, length-prefixed (Triton's warm-up file format for strings). */
const oneString = (text: string) => Buffer.concat([Buffer.from(Uint32Array.of(Buffer.byteLength(text)).buffer), Buffer.from(text)]);

describe('warm-up in the session workers', { timeout: 60_000 }, () => {
  let models: Awaited<ReturnType<typeof modelDirectory>>;
  let numbersFile: string;
  const fromFile = (): WarmupSample[] => [{ name: 'from a file', runs: 2, inputs: [{ name: 'text', datatype: 'BYTES', shape: [3], rows: 3, values: { kind: 'file', file: 'numbers.bin', path: numbersFile } }] }];
  const emptyStrings: WarmupSample[] = [{ name: 'empty strings', runs: 1, inputs: [{ name: 'text', datatype: 'BYTES', shape: [2], rows: 2, values: { kind: 'zero' } }] }];

  before(async () => {
    models = await modelDirectory({ parse_int: parseIntModel() });
    numbersFile = join(dirname(models.path('parse_int')), 'numbers.bin');
    await writeFile(numbersFile, oneString('21'));
  });
  after(async () => {
    await models.remove();
    failIfWorkersOutliveTests();
  });

  it('the engine runs the samples on its instances, and a failing one is an error naming the sample and why', async () => {
    const engine = new OnnxRuntimeEngine();
    try {
      await engine.load(runtimeKey('parse_int/1'), models.path('parse_int'), runtimeOptions({ instanceCount: 2 }));
      await engine.warmUp(runtimeKey('parse_int/1'), fromFile());
      await assert.rejects(engine.warmUp(runtimeKey('parse_int/1'), emptyStrings), /warm-up sample 'empty strings' failed: .*Cast/);
      const { outputs } = await runOne(engine, runtimeKey('parse_int/1'), [tensor('text', 'BYTES', [1], ['4'])], ['doubled']);
      assert.deepEqual(outputs[0]!.data, BigInt64Array.of(8n), 'a failed warm-up leaves the instances serving');
    } finally {
      await engine.onApplicationShutdown();
    }
  });

  it('an instance replacing a lost one runs the samples before it takes work: one that fails them never serves', async () => {
    const { pool } = await SessionWorkerPool.start({ modelPath: models.path('parse_int'), executionProviders: ['cpu'], intraOpThreads: 1, interOpThreads: 1, allowSpinning: false, logSeverityLevel: 2 }, 1, (line) => process.stderr.write(`${line}\n`));
    try {
      await pool.warmUp(fromFile());
      const run = () => pool.run([[tensor('text', 'BYTES', [1], ['5'])]], ['doubled']);
      await assert.rejects(pool.run([[tensor('text', 'BYTES', [1], ['5'])]], ['doubled'], undefined, { crash: true }), /exited with code 70/);
      assert.deepEqual((await run()).outputs[0]![0]!.data, BigInt64Array.of(10n), 'the replacement warmed up and serves');
      assert.equal(pool.restartedWorkers, 1);

      // The warm-up file no longer parses: the next replacement fails its warm-up and never serves.
      await writeFile(numbersFile, oneString('twenty-one'));
      await assert.rejects(pool.run([[tensor('text', 'BYTES', [1], ['5'])]], ['doubled'], undefined, { crash: true }), /exited with code 70/);
      await assert.rejects(run(), /no worker is left to run this model: its replacement failed to load/);
      assert.equal(pool.restartedWorkers, 1);
      assert.equal(pool.instances, 0);
    } finally {
      await writeFile(numbersFile, oneString('21'));
      await pool.release();
    }
  });
});
