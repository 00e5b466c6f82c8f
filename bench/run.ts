/**
 * `npm run bench`: runs the rows of bench/rows/index.ts one after another and prints one table.
 * Each row is a figure of the server against a baseline measured in the same run (speed is a ratio
 * to baselines measured alongside, never a figure asserted in tests); each row's module says what
 * it measures and its target.
 *
 * Scenarios run one after another (never two loads at once), servers and baselines each in their
 * own child process, on 127.0.0.1 and free ports; models are built into a temporary directory that
 * is removed at the end. The server runs with LOG_LEVEL=info: its access log (written to a file in
 * that directory) is part of the real cost. Around each measured window the bench reads the
 * server's /stats and, on Linux, where the CPU went (bench/cpu.ts), and prints from them why a
 * missed target was missed. A missed target is a result, not a failure: the exit code is non-zero
 * only when something broke (a process failed, requests failed where none may, a wrong answer).
 *
 * Env: BENCH_DURATION_SECONDS (5), BENCH_WARMUP_SECONDS (1), BENCH_CONNECTIONS (64, and as many
 * gRPC calls in flight in 6; above the MLP's max_queue_size of 64 its closed loops also get 503s,
 * counted apart), BENCH_MLP_THREADS (2: intra-op threads of the MLP instance and of the bare
 * runtime), BENCH_ONLY (unset: every row; else the names of rows, comma-separated (`grpc`,
 * `observability`, `resilience`...), to iterate on some: their rows are printed, with each load's
 * CPU, and no results file is written). Prints one table and writes the figures to
 * bench/results/<YYYY-MM-DD>.json and latest.json.
 *   `npm run bench` then runs the benches that start servers of their own kind, each printing its
 *   figures as ratios within its run: bench/generative.ts (continuous batching), bench/replicas.ts
 *   (Redis mode on / off, swap propagation) and bench/shared-rate-limit.ts (shared rate limits).
 */
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BenchContext, BenchRow, Machine, RowReport, SharedRuns } from './bench-row.js';
import { buildDemoModels, children, HOST, log, projectRoot, REQUEST_TIMEOUT_SECONDS, setWorkDir, settings, versionOf } from './harness.js';
import { cpuText, jsonOf, ms, printTable, round } from './report.js';
import { BENCH_ROWS } from './rows/index.js';
import { MLP_MAX_BATCH_SIZE, MLP_MAX_QUEUE_DELAY_MICROS, MLP_MAX_QUEUE_SIZE, mlpConfig } from './workloads.js';

/** BENCH_ONLY: unset for every row, else the rows it names (comma-separated). */
function selectedRows(): { rows: readonly BenchRow[]; only: boolean } {
  const raw = process.env.BENCH_ONLY?.trim();
  if (raw === undefined || raw === '') return { rows: BENCH_ROWS, only: false };
  const names = raw.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !BENCH_ROWS.some((row) => row.name === name));
  if (unknown.length > 0 || names.length === 0) {
    process.stderr.write(`bench: BENCH_ONLY=${JSON.stringify(raw)} must be unset or names of ${BENCH_ROWS.map((row) => `"${row.name}"`).join(', ')}, comma-separated\n`);
    process.exit(2);
  }
  return { rows: BENCH_ROWS.filter((row) => names.includes(row.name)), only: true };
}

const selection = selectedRows();
/** Loads of D + W seconds: each row's own, and each shared run once. */
const LOAD_COUNT =
  selection.rows.reduce((sum, row) => sum + row.loads, 0) +
  [...new Set(selection.rows.flatMap((row) => row.uses ?? []))].reduce((sum, shared) => sum + shared.loads, 0);
/** Hard limit of the whole run: every load plus generous start-up, drain and shutdown slack. */
const BUDGET_MS = (LOAD_COUNT * (settings.durationSeconds + settings.warmupSeconds) + 2 * REQUEST_TIMEOUT_SECONDS + 150 + 15 * selection.rows.length) * 1000;
const resultsDir = path.join(projectRoot, 'bench', 'results');

// ---- processes -------------------------------------------------------------------------------

let tmpDir: string | undefined;
const cleanUpNow = (): void => {
  children.killAllNow();
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
};
process.on('exit', cleanUpNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, stopping\n`);
    process.exit(130);
  });
}
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: exceeded its ${BUDGET_MS / 1000} s budget, aborting\n`);
  process.exit(1);
}, BUDGET_MS);

// ---- run -------------------------------------------------------------------------------------

/** Plain objects merged key by key (rows each add their part of `settings.requestBytes`...). */
function mergeInto(target: Record<string, unknown>, part: Readonly<Record<string, unknown>>): void {
  for (const [key, value] of Object.entries(part)) {
    const existing = target[key];
    const plain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (plain(existing) && plain(value)) mergeInto(existing, value);
    else target[key] = plain(value) ? { ...value } : value;
  }
}

async function main(): Promise<number> {
  const machine: Machine = {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    platform: `${os.platform()} ${os.arch()}`,
    totalMemoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    onnxruntime: versionOf('onnxruntime-node'),
    fastify: versionOf('fastify'),
    autocannon: versionOf('autocannon'),
    grpcJs: versionOf('@grpc/grpc-js'),
  };
  log(
    `${machine.cpus} cpus (${machine.cpuModel}), node ${machine.node}, onnxruntime-node ${machine.onnxruntime}; ` +
      `${settings.connections} connections, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s per scenario, ` +
      `MLP ${settings.mlpThreads} intra-op thread(s); rows: ${selection.rows.map((row) => row.name).join(', ')}`,
  );

  tmpDir = await mkdtemp(path.join(os.tmpdir(), 'onnx-serving-bench-'));
  setWorkDir(tmpDir);
  const demoRepository = path.join(tmpDir, 'demo-models');
  await buildDemoModels(demoRepository);
  const sharedRuns = new Map<SharedRuns<unknown>, Promise<unknown>>();
  const bench: BenchContext = {
    machine,
    demoRepository,
    shared<T>(runs: SharedRuns<T>): Promise<T> {
      let result = sharedRuns.get(runs as SharedRuns<unknown>);
      if (!result) {
        log(`${runs.name}: measuring (shared by several rows)`);
        result = runs.measure(bench);
        sharedRuns.set(runs as SharedRuns<unknown>, result);
      }
      return result as Promise<T>;
    },
  };

  const reports: RowReport[] = [];
  for (const row of selection.rows) reports.push(await row.run(bench));

  const rows = reports.flatMap((report) => report.rows);
  const problems = reports.flatMap((report) => report.problems ?? []);
  const notes = reports.flatMap((report) => report.notes ?? []);
  const loadTexts = reports.flatMap((report) => (report.loadText ? [report.loadText] : []));

  console.log('');
  console.log(
    `machine: ${machine.cpus} cpus (${machine.cpuModel}), ${machine.platform}, node ${machine.node}, ` +
      `onnxruntime-node ${machine.onnxruntime}, fastify ${machine.fastify}, autocannon ${machine.autocannon}, @grpc/grpc-js ${machine.grpcJs}`,
  );
  console.log(
    `load: in the bench process on 127.0.0.1, one scenario at a time, ${settings.warmupSeconds} s warm-up + ${settings.durationSeconds} s each; ` +
      `${loadTexts.join('; ')}; server LOG_LEVEL=info` +
      (selection.only ? `; BENCH_ONLY=${process.env.BENCH_ONLY}` : ''),
  );
  console.log(
    `models: classifier (demo, no config: max_batch_size 8, no queue delay); MLP 512-2048-2048-10 FP32, batch-1 requests, ` +
      `config max_batch_size ${MLP_MAX_BATCH_SIZE} (off: 1), max_queue_delay ${MLP_MAX_QUEUE_DELAY_MICROS} µs adaptive, ` +
      `max_queue_size ${MLP_MAX_QUEUE_SIZE}, 1 instance x ${settings.mlpThreads} intra-op thread(s)`,
  );
  console.log('');
  printTable(rows);
  console.log('');
  console.log(`targets met: ${rows.filter((r) => r.met).length} of ${rows.length}`);
  for (const row of rows) if (!row.met && row.why) console.log(`${row.id} not met: ${row.why}`);
  for (const line of reports.flatMap((report) => report.footnotes ?? [])) console.log(line);
  if (selection.only) {
    for (const [name, run] of reports.flatMap((report) => report.runs ?? [])) {
      if (run.window.cpu) console.log(`${name}: ${cpuText(run.window.cpu)}, p50 ${ms(run.load.p50Ms)}, p99 ${ms(run.load.p99Ms)}`);
    }
  }
  for (const note of notes) console.log(`note: ${note}`);
  console.log('');

  const resultSettings: Record<string, unknown> = {
    ...settings,
    host: HOST,
    requestTimeoutSeconds: REQUEST_TIMEOUT_SECONDS,
    mlpConfig: { batching: mlpConfig(MLP_MAX_BATCH_SIZE, settings.mlpThreads), noBatching: mlpConfig(1, settings.mlpThreads) },
  };
  const figures: Record<string, unknown> = {};
  const scenarios: Record<string, unknown> = {};
  for (const report of reports) {
    mergeInto(resultSettings, report.settings ?? {});
    mergeInto(figures, report.figures ?? {});
    mergeInto(scenarios, report.scenarios ?? {});
  }
  const results = {
    generatedAt: new Date().toISOString(),
    command: 'npm run bench',
    machine,
    settings: resultSettings,
    targets: rows.map(({ id, target, measured, baseline, value, required, met, why }) => ({ id, target, measured, baseline, value, required, met, why })),
    figures,
    scenarios,
    notes,
    problems,
  };
  if (selection.only) {
    console.log(`results: ${JSON.stringify(jsonOf({ figures, scenarios }))}`);
    console.log('');
  } else {
    await mkdir(resultsDir, { recursive: true });
    const text = `${JSON.stringify(jsonOf(results), null, 2)}\n`;
    const dated = path.join(resultsDir, `${results.generatedAt.slice(0, 10)}.json`);
    const latest = path.join(resultsDir, 'latest.json');
    await writeFile(dated, text);
    await writeFile(latest, text);
    console.log(`wrote ${path.relative(process.cwd(), dated) || dated} and ${path.relative(process.cwd(), latest) || latest}`);
  }

  if (problems.length > 0) {
    process.stderr.write(`bench: some requests failed or a run did not measure what it says, the figures are not valid:\n  ${problems.join('\n  ')}\n`);
    return 1;
  }
  return 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  process.stderr.write(`bench: failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  clearTimeout(watchdog);
  await children.stopAll();
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  tmpDir = undefined;
  setWorkDir(undefined);
}
process.exit(exitCode);
