// onnxruntime's own stderr (coloured, in its own format) reaches the server's logger at a mapped level.
import { runtimeKey } from '../../support/runtime-keys.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Logger, type LoggerService } from '@nestjs/common';
import { OnnxRuntimeEngine } from '../../../src/infra/onnx/onnx-runtime-engine.js';
import { loadAppConfig } from '../../../src/infra/config/app-config.js';
import { unusedInitializerModel } from '../../../scripts/build-models.js';
import { failIfWorkersOutliveTests, modelDirectory, runtimeOptions } from './onnx-fixtures.js';

interface Captured {
  readonly level: string;
  readonly fields: Record<string, unknown>;
}

/** A Nest logger keeping what the onnxruntime context logs, with a wait for the first line that matches. */
class CapturingLogger implements LoggerService {
  readonly lines: Captured[] = [];
  private readonly waiters: { match: (line: Captured) => boolean; resolve: (line: Captured) => void }[] = [];

  log = (message: unknown, ...rest: unknown[]) => this.keep('log', message, rest);
  warn = (message: unknown, ...rest: unknown[]) => this.keep('warn', message, rest);
  error = (message: unknown, ...rest: unknown[]) => this.keep('error', message, rest);
  debug = (message: unknown, ...rest: unknown[]) => this.keep('debug', message, rest);
  verbose = (message: unknown, ...rest: unknown[]) => this.keep('verbose', message, rest);
  fatal = (message: unknown, ...rest: unknown[]) => this.keep('fatal', message, rest);

  next(match: (line: Captured) => boolean): Promise<Captured> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  private keep(level: string, message: unknown, rest: unknown[]): void {
    if (rest.at(-1) !== 'onnxruntime' || typeof message !== 'object' || message === null) return;
    const line = { level, fields: message as Record<string, unknown> };
    this.lines.push(line);
    for (const waiter of [...this.waiters]) {
      if (!waiter.match(line)) continue;
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  }
}

const REMOVING = /Removing initializer 'unused'/;
const ANSI = /\x1b\[/;

describe("onnxruntime's own log", { timeout: 60_000 }, () => {
  let models: Awaited<ReturnType<typeof modelDirectory>>;
  const logs = new CapturingLogger();

  before(async () => {
    models = await modelDirectory({ unused: unusedInitializerModel() });
    Logger.overrideLogger(logs);
  });

  after(async () => {
    Logger.overrideLogger(false);
    await models.remove();
    failIfWorkersOutliveTests();
  });

  it("a warning it writes while loading a model is logged at warn, naming the model version, without colour codes or its time stamp", async () => {
    const engine = new OnnxRuntimeEngine(undefined, undefined, loadAppConfig({ LOG_LEVEL: 'info' }));
    try {
      const warned = logs.next((line) => REMOVING.test(String(line.fields.msg)) && line.fields.model === 'unused');
      await engine.load(runtimeKey('unused/1'), models.path('unused'), runtimeOptions());
      const line = await warned;
      assert.equal(line.level, 'warn');
      assert.deepEqual(line.fields, {
        msg: "Removing initializer 'unused'. It is not used by any node and should be removed from the model.",
        model: 'unused',
        version: 1,
        source: line.fields.source,
      });
      assert.match(String(line.fields.source), /^graph\.cc:\d+ CleanUnusedInitializersAndNodeArgs$/);
      for (const each of logs.lines) assert.doesNotMatch(JSON.stringify(each.fields), /\\u001b|\x1b/, 'no ANSI code in any logged line');
      assert.doesNotMatch(String(line.fields.msg), ANSI);
    } finally {
      await engine.onApplicationShutdown();
    }
  });

  it('LOG_LEVEL=debug sets the session log severity to info: its info lines come, at debug', async () => {
    const engine = new OnnxRuntimeEngine(undefined, undefined, loadAppConfig({ LOG_LEVEL: 'debug' }));
    try {
      const info = logs.next((line) => line.level === 'debug' && line.fields.model === 'unused' && line.fields.version === 2);
      await engine.load(runtimeKey('unused/2'), models.path('unused'), runtimeOptions());
      const line = await info;
      assert.doesNotMatch(String(line.fields.msg), ANSI);
      assert.doesNotMatch(String(line.fields.msg), /^\d{4}-\d\d-\d\d /, "onnxruntime's time stamp is dropped (pino writes its own)");
    } finally {
      await engine.onApplicationShutdown();
    }
  });
});
