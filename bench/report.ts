/**
 * How the bench reports: the table of target rows, the number formats, and the readings of a
 * measured window (CPU per request, who was short of CPU) that a missed target's "why" is made of.
 */
import os from 'node:os';
import type { CpuUse } from './cpu.js';
import type { LoadResult } from './load.js';
import type { GrpcClosedLoopRun, Window } from './measure.js';
import type { RunFigures } from './server-stats.js';
import { MLP_MAX_BATCH_SIZE } from './workloads.js';

export const round = (value: number | undefined, digits: number): number | undefined =>
  value === undefined || !Number.isFinite(value) ? value : Number(value.toFixed(digits));
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
export const ms = (value: number | undefined): string =>
  value === undefined || Number.isNaN(value) ? '-' : value < 1 ? `${value.toFixed(3)} ms` : `${value.toFixed(2)} ms`;
export const x = (ratio: number, digits = 2): string => `${ratio.toFixed(digits)}x`;
export const pct = (fraction: number): string => `${Math.round(fraction * 100)}%`;

export interface TargetRow {
  readonly id: number;
  readonly target: string;
  readonly measured: string;
  readonly baseline: string;
  readonly value: string;
  readonly required: string;
  readonly met: boolean;
  /** Why it was missed, when the figures tell. */
  readonly why?: string;
}

export function printTable(rows: readonly TargetRow[]): void {
  const header = { id: '#', target: 'target', measured: 'measured', baseline: 'baseline', value: 'figure', required: 'needed', result: 'result' };
  const cells = rows.map((r) => ({ ...r, id: String(r.id), result: r.met ? 'met' : 'NOT MET' }));
  const keys = Object.keys(header) as (keyof typeof header)[];
  const all = [header, ...cells];
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...all.map((r) => r[k].length))])) as Record<keyof typeof header, number>;
  const line = (r: Record<keyof typeof header, string>): string =>
    keys
      .map((k) => (k === 'value' ? r[k].padStart(width[k]) : r[k].padEnd(width[k])))
      .join(' | ')
      .trimEnd();
  console.log(line(header));
  console.log(keys.map((k) => '-'.repeat(width[k])).join('-|-'));
  for (const row of cells) console.log(line(row));
}

/** The main thread's share of the window: on a CPU, plus runnable but waiting for one. */
export function mainThreadDemand(cpu: CpuUse): number {
  return cpu.serverMainThread + (cpu.serverMainThreadWaiting ?? 0);
}

export function mainThreadText(cpu: CpuUse): string {
  const waiting = cpu.serverMainThreadWaiting;
  return `main thread ${pct(cpu.serverMainThread)} on a CPU` + (waiting !== undefined && waiting >= 0.005 ? ` + ${pct(waiting)} waiting for one` : '');
}

export function cpuText(cpu: CpuUse | undefined): string {
  if (!cpu) return 'no CPU figures (not Linux)';
  return (
    `server ${mainThreadText(cpu)}, other threads ${cpu.serverOtherThreads.toFixed(2)} cores; ` +
    `load generator ${cpu.loadGenerator.toFixed(2)} cores; machine ${pct(cpu.machineBusyFraction)} busy`
  );
}

export function jsonOf(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) => {
      if (v instanceof Map) return Object.fromEntries(v);
      if (typeof v === 'number' && !Number.isInteger(v)) return round(v, 4);
      if (typeof v === 'function') return undefined;
      return v;
    }),
  );
}

/** The machine's busy cores that neither the server, the load generator nor `known` (cores of other processes of the bench) account for. */
export function otherProcessesCores(cpu: CpuUse, known = 0): number {
  return cpu.machineBusyFraction * os.availableParallelism() - cpu.serverMainThread - cpu.serverOtherThreads - cpu.loadGenerator - known;
}

/**
 * Why a closed loop's rate fell short of its baseline's, read from its measured window: its main
 * thread was saturated (`perAnswer` then says where the difference went), the machine had no CPU
 * left, or neither, and the answers waited on the model instance. `subject` names the process
 * ("server", "with-server"), `unit` what it answered; undefined without CPU figures.
 */
export function shortfallWhy(window: Window, subject: string, perAnswer: string, { unit = 'requests', alsoBusy = '' }: { unit?: string; alsoBusy?: string } = {}): string | undefined {
  const cpu = window.cpu;
  if (!cpu) return undefined;
  if (mainThreadDemand(cpu) >= 0.9) return `main-thread bound: the ${subject}'s ${mainThreadText(cpu)}, ${perAnswer}`;
  if (cpu.machineBusyFraction >= 0.95) return `no CPU left: ${cpuText(cpu)}${alsoBusy}; ${perAnswer}`;
  return (
    `neither the main thread (${mainThreadText(cpu)}) nor the machine (${pct(cpu.machineBusyFraction)} busy) was saturated: ${unit} waited on the model instance` +
    (window.figures ? ` (runs of ${window.figures.meanBatchSize.toFixed(1)} rows)` : '')
  );
}

/** Every answer costs the main thread, 503s included. */
export const answered = (load: LoadResult): number => load.requests + load.non2xx;

/** Main-thread CPU of the (server or bare) process per request answered, µs. */
export const mainThreadUsPerRequest = (run: { cpu?: CpuUse }, requests: number): number | undefined =>
  run.cpu && requests > 0 ? (run.cpu.serverMainThreadMs / requests) * 1000 : undefined;

/** CPU of the whole (server or bare) process per request answered, every thread and child process (the model instances), µs. */
export const processUsPerRequest = (run: { cpu?: CpuUse }, requests: number): number | undefined =>
  run.cpu && requests > 0 ? ((run.cpu.serverMainThreadMs + run.cpu.serverOtherThreadsMs) / requests) * 1000 : undefined;

/** Main-thread CPU of the (server or bare) process per call answered, µs. */
export function mainThreadUsPerCall(run: GrpcClosedLoopRun): number | undefined {
  const calls = run.load.requests + run.load.errors;
  return run.window.cpu && calls > 0 ? (run.window.cpu.serverMainThreadMs / calls) * 1000 : undefined;
}


export function figuresJson(f: RunFigures): object {
  return {
    meanBatchSize: f.meanBatchSize,
    meanRunMs: f.meanRunMs,
    computeBusyFraction: f.computeBusyFraction,
    [`run${MLP_MAX_BATCH_SIZE}Ms`]: f.runMsAt(MLP_MAX_BATCH_SIZE),
  };
}

export const machineBusy = (cpu: CpuUse | undefined): string => (cpu ? `, machine ${pct(cpu.machineBusyFraction)} busy` : '');
