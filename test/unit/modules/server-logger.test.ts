import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PinoLogger } from 'nestjs-pino';
import { ServerLogger } from '../../../src/modules/observability/server-logger.js';

/** A PinoLogger stand-in that records the level of each line. */
function recordingLogger(): { logger: PinoLogger; lines: { level: string; text: string }[] } {
  const lines: { level: string; text: string }[] = [];
  const at = (level: string) => (...args: unknown[]) => lines.push({ level, text: args.filter((a) => typeof a === 'string').join(' ') });
  const logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), fatal: at('fatal') };
  return { logger: logger as unknown as PinoLogger, lines };
}

describe('ServerLogger', () => {
  it("writes Nest's start-up lines (modules initialised, routes mapped) at debug", () => {
    const { logger, lines } = recordingLogger();
    const serverLogger = new ServerLogger(logger, {});
    serverLogger.log('InferenceModule dependencies initialized', 'InstanceLoader');
    serverLogger.log('Mapped {/v2, GET} route', 'RouterExplorer');
    serverLogger.log('Nest application successfully started', 'NestApplication');
    assert.deepEqual(lines.map((l) => l.level), ['debug', 'debug', 'debug']);
  });

  it("writes the server's own lines at info", () => {
    const { logger, lines } = recordingLogger();
    new ServerLogger(logger, {}).log('serving HTTP on http://127.0.0.1:8000', 'Server');
    assert.deepEqual(lines, [{ level: 'info', text: 'serving HTTP on http://127.0.0.1:8000' }]);
  });
});
