import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuntimeLogLine, runtimeSeverityFor } from '../../../../src/infra/onnx/onnxruntime-log.js';

describe("onnxruntime's stderr lines", () => {
  it('a coloured warning: level warn, no colour code, no time stamp, the source apart', () => {
    const raw = "\x1b[0;93m2026-12-03 13:35:50.603601547 [W:onnxruntime:, graph.cc:5607 CleanUnusedInitializersAndNodeArgs] Removing initializer 'unused'. It is not used by any node and should be removed from the model.\x1b[m";
    assert.deepEqual(parseRuntimeLogLine(raw), {
      level: 'warn',
      message: "Removing initializer 'unused'. It is not used by any node and should be removed from the model.",
      source: 'graph.cc:5607 CleanUnusedInitializersAndNodeArgs',
    });
  });

  it('each severity letter maps to a server level; a log id before the comma is allowed', () => {
    const line = (letter: string) => `2026-12-03 13:35:50.693 [${letter}:onnxruntime:onnxruntime-node, bfc_arena.cc:28 BFCArena] text`;
    assert.deepEqual(['V', 'I', 'W', 'E', 'F'].map((letter) => parseRuntimeLogLine(line(letter)).level), ['trace', 'debug', 'warn', 'error', 'fatal']);
    assert.equal(parseRuntimeLogLine(line('E')).message, 'text');
  });

  it('a red error line loses its bold-red code too', () => {
    const parsed = parseRuntimeLogLine('\x1b[1;31m2026-12-03 13:35:50.6 [E:onnxruntime:, sequential_executor.cc:572 ExecuteKernel] Non-zero status code\x1b[m');
    assert.equal(parsed.level, 'error');
    assert.equal(parsed.message, 'Non-zero status code');
  });

  it('a line in no format of onnxruntime is a warning, kept whole (without colour)', () => {
    assert.deepEqual(parseRuntimeLogLine('\x1b[33m(node:42) Warning: something\x1b[39m'), { level: 'warn', message: '(node:42) Warning: something' });
  });

  it('LOG_LEVEL sets the least severity onnxruntime writes: as much as the logger shows', () => {
    assert.deepEqual((['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const).map(runtimeSeverityFor), [0, 1, 2, 2, 3, 4, 4]);
  });
});
