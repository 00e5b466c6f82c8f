import { stripVTControlCharacters } from 'node:util';
import { Logger } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';

/** The server's log levels (pino's, as LOG_LEVEL names them), without `silent`. */
type RuntimeLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** One line onnxruntime wrote to its stderr, as the server logs it. */
export interface RuntimeLogLine {
  readonly level: RuntimeLogLevel;
  /** The text without colour codes and without onnxruntime's own time stamp and severity. */
  readonly message: string;
  /** Where in onnxruntime it comes from (`graph.cc:5607 CleanUnusedInitializersAndNodeArgs`), when the line says. */
  readonly source?: string;
}

/**
 * onnxruntime's severities (OrtLoggingLevel: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal) as the
 * server's levels. Its `info` lines describe its own internals (session options, thread pools, each
 * graph transformer), a dozen per session: they are the server's `debug`.
 */
const LEVEL_OF_SEVERITY: Readonly<Record<string, RuntimeLogLevel>> = { V: 'trace', I: 'debug', W: 'warn', E: 'error', F: 'fatal' };

/**
 * The least severity onnxruntime is to write (its session option `logSeverityLevel` and the
 * environment's `logLevel`) for a server logging at `level`: nothing it writes is then dropped by
 * the logger, and nothing the logger would show is kept back.
 */
export function runtimeSeverityFor(level: AppConfig['LOG_LEVEL']): 0 | 1 | 2 | 3 | 4 {
  switch (level) {
    case 'trace':
      return 0;
    case 'debug':
      return 1;
    case 'info':
    case 'warn':
      return 2;
    case 'error':
      return 3;
    case 'fatal':
    case 'silent':
      return 4;
  }
}

/** onnxruntime's `env.logLevel` names of its severities, by number. */
export const RUNTIME_SEVERITY_NAMES = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;

/**
 * onnxruntime's line format (its default sink, coloured on a terminal and off one alike):
 * `2026-12-03 13:35:50.603601547 [W:onnxruntime:<log id>, graph.cc:5607 CleanUnused...] message`.
 */
const RUNTIME_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[([VIWEF]):onnxruntime:[^,\]]*,\s*([^\]]*)\]\s?(.*)$/s;

/**
 * Reads one line of a session worker's stderr. A line in onnxruntime's format gets the level its
 * severity maps to; any other line (Node.js's own warnings, a native abort's last words) is a
 * warning: something wrote to stderr that the server did not expect.
 */
export function parseRuntimeLogLine(raw: string): RuntimeLogLine {
  const text = stripVTControlCharacters(raw).trimEnd();
  const match = RUNTIME_LINE.exec(text);
  if (!match) return { level: 'warn', message: text };
  return { level: LEVEL_OF_SEVERITY[match[1]!]!, message: match[3]!, source: match[2]!.trim() || undefined };
}

/** Nest's logger methods by level (nestjs-pino writes `verbose` as pino's trace, `log` as info). */
const NEST_METHOD_OF: Readonly<Record<RuntimeLogLevel, (this: Logger, message: object) => void>> = {
  trace: Logger.prototype.verbose,
  debug: Logger.prototype.debug,
  info: Logger.prototype.log,
  warn: Logger.prototype.warn,
  error: Logger.prototype.error,
  fatal: Logger.prototype.fatal,
};

/**
 * Where an instance process's stderr lines go: each is logged through `logger` at the level its
 * onnxruntime severity maps to, with `fields` (the model version it serves).
 */
export function runtimeLogSink(logger: Logger, fields: Readonly<Record<string, unknown>>): (raw: string) => void {
  return (raw) => {
    const line = parseRuntimeLogLine(raw);
    NEST_METHOD_OF[line.level].call(logger, { msg: line.message, ...fields, ...(line.source !== undefined && { source: line.source }) });
  };
}
