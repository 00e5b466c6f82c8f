/**
 * Row 7, the observability cost: two server processes on the demo classifier, one after the other,
 * the loop of 1 on each: without (ALLOW_METRICS=false, no OTEL_*) and with (metrics on, /metrics
 * scraped once a second by the bench through the run, as Prometheus would; tracing on, one
 * request in TRACE_SAMPLING sampled (OTEL_TRACES_SAMPLER=parentbased_traceidratio), spans batched and exported over OTLP/HTTP (JSON, as
 * @opentelemetry/exporter-trace-otlp-http sends it) to bench/otlp-collector-stub.ts, a child
 * process that counts what it receives): with / without req/s. Target >= 0.95x. A with-run whose
 * stub received no span, or whose scrapes failed, is not a valid figure.
 */
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchRow } from '../bench-row.js';
import { CpuWindow, type CpuUse } from '../cpu.js';
import { children, here, HOST, onClassifierServer, READY_TIMEOUT_MS } from '../harness.js';
import { classifierLoop, type ClosedLoopRun } from '../measure.js';
import { freePort, waitForReady, type Child } from '../processes.js';
import { fetchMetricsText, sampleSum } from '../prometheus.js';
import { answered, figuresJson, int, mainThreadUsPerRequest, ms, otherProcessesCores, shortfallWhy, x, type TargetRow } from '../report.js';
import { CLASSIFIER } from '../workloads.js';
import path from 'node:path';

const TARGET = 0.95;
/** The share of requests traced in the with-run: a production tracing setting (issue 17's row), not every request. */
const TRACE_SAMPLING = 0.1;

/** How often the bench scrapes the server's /metrics in 7's with-run, as a Prometheus would (its default scrape_interval is 1 min, 15 s is common: 1 s is a busy one). */
const METRICS_SCRAPE_INTERVAL_MS = 1000;

/** What the collector stub had received: export requests (of each encoding), their bytes, the spans in them. */
interface ExportCounts {
  readonly requests: number;
  readonly bytes: number;
  readonly spans: number;
  /** Export requests it could not read (answered 400). */
  readonly malformed: number;
  readonly json: number;
  readonly protobuf: number;
}

interface CollectorStub {
  /** OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces). */
  readonly endpoint: string;
  readonly child: Child;
}

/** bench/otlp-collector-stub.ts in its own process, on a free port, up. */
async function startCollectorStub(): Promise<CollectorStub> {
  const port = await freePort();
  const endpoint = `http://${HOST}:${port}`;
  const child = children.start('OTLP collector stub', path.join(here, 'otlp-collector-stub.js'), [], { PORT: String(port), HOST });
  try {
    await waitForReady(`${endpoint}/counts`, child, READY_TIMEOUT_MS);
  } catch (error) {
    await children.stop(child);
    throw error;
  }
  return { endpoint, child };
}

async function fetchExportCounts(stub: CollectorStub): Promise<ExportCounts> {
  const response = await fetch(`${stub.endpoint}/counts`, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${stub.child.name} answered ${response.status} to GET /counts: ${text}`);
  return JSON.parse(text) as ExportCounts;
}

/** Stops the stub (after the server, whose shutdown flushes the spans it still batched) and reads the counts it prints; undefined if it printed none. */
async function stopCollectorStub(stub: CollectorStub): Promise<ExportCounts | undefined> {
  await children.stop(stub.child);
  const stdout = stub.child.process.stdout;
  if (stdout) await Promise.race([finished(stdout).catch(() => undefined), sleep(1000)]); // 'exit' may come before the last of its stdout
  const last = stub.child.stdout().trim().split('\n').at(-1);
  try {
    return last ? (JSON.parse(last) as ExportCounts) : undefined;
  } catch {
    return undefined;
  }
}

const countsBetween = (before: ExportCounts, after: ExportCounts): ExportCounts => ({
  requests: after.requests - before.requests,
  bytes: after.bytes - before.bytes,
  spans: after.spans - before.spans,
  malformed: after.malformed - before.malformed,
  json: after.json - before.json,
  protobuf: after.protobuf - before.protobuf,
});

interface ScrapeFigures {
  readonly scrapes: number;
  readonly failed: number;
  readonly firstError?: string;
  /** Time to the whole answer, ms. */
  readonly meanMs: number;
  readonly maxMs: number;
  readonly lastBytes: number;
  /** inference_request_success_total of the classifier in the last scrape: the metrics counted the load. */
  readonly classifierSuccesses: number;
}

/** GETs `url` every METRICS_SCRAPE_INTERVAL_MS (one at a time, as Prometheus does) from now until stop(). */
function startScraping(url: string): { stop(): Promise<ScrapeFigures> } {
  const timesMs: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let lastText = '';
  let stopping = false;
  const wake = new AbortController();
  const loop = (async () => {
    while (!stopping) {
      const startedAt = performance.now();
      try {
        lastText = await fetchMetricsText(url);
        timesMs.push(performance.now() - startedAt);
      } catch (error) {
        failed++;
        firstError ??= (error as Error).message;
      }
      const wait = startedAt + METRICS_SCRAPE_INTERVAL_MS - performance.now();
      if (wait > 0 && !stopping) await sleep(wait, undefined, { signal: wake.signal }).catch(() => undefined);
    }
  })();
  return {
    async stop() {
      stopping = true;
      wake.abort();
      await loop;
      return {
        scrapes: timesMs.length,
        failed,
        firstError,
        meanMs: timesMs.reduce((a, b) => a + b, 0) / Math.max(1, timesMs.length),
        maxMs: Math.max(0, ...timesMs),
        lastBytes: Buffer.byteLength(lastText),
        classifierSuccesses: sampleSum(lastText, 'inference_request_success_total', { model: CLASSIFIER }),
      };
    },
  };
}

/** Whether anything answers HTTP at `url`. */
async function answersHttp(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

interface ObservabilityRuns {
  readonly without: ClosedLoopRun;
  readonly with: ClosedLoopRun;
  /** Whether the without-server answered on its METRICS_PORT (it must not). */
  readonly metricsServedWithout: boolean;
  readonly scrapes: ScrapeFigures;
  /** What the stub received over with's measured window. */
  readonly exportedInWindow?: ExportCounts;
  /** What it received in all, the spans flushed at the server's shutdown included (undefined: it printed no counts). */
  readonly exportedTotal?: ExportCounts;
  /** The stub's CPU over with's measured window, cores. */
  readonly stubCores?: number;
}

/** 7: the demo classifier under the loop of 1, on a server without metrics and tracing, then on one with both. */
async function measureObservability(demoRepository: string): Promise<ObservabilityRuns> {
  const { without, metricsServedWithout } = await onClassifierServer('server-observability-off', demoRepository, { ALLOW_METRICS: 'false' }, async (off) => ({
    metricsServedWithout: await answersHttp(off.metricsUrl),
    without: await classifierLoop('7. server, classifier, without metrics and tracing', off),
  }));

  const stub = await startCollectorStub();
  let withRun: ClosedLoopRun;
  let scrapes: ScrapeFigures;
  let exportedInWindow: ExportCounts | undefined;
  let exportedTotal: ExportCounts | undefined;
  let stubCores: number | undefined;
  try {
    // The server is stopped before the stub: its shutdown exports the spans still batched, to the stub still up.
    ({ withRun, scrapes } = await onClassifierServer(
      'server-observability-on',
      demoRepository,
      {
        ALLOW_METRICS: 'true',
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: stub.endpoint,
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: String(TRACE_SAMPLING),
      },
      async (on) => {
        const scraping = startScraping(on.metricsUrl);
        let stubCpu: CpuWindow | undefined;
        let before: ExportCounts | undefined;
        let run: ClosedLoopRun;
        let scraped: ScrapeFigures;
        try {
          run = await classifierLoop('7. server, classifier, with metrics and tracing', on, {
            around: {
              onMeasureStart: async () => {
                stubCpu = new CpuWindow(stub.child.process.pid); // the stub as the "server" of a window of its own: its cores are its threads' together
                before = await fetchExportCounts(stub);
              },
              onMeasureEnd: async () => {
                const after = await fetchExportCounts(stub);
                const cpu = stubCpu?.stop();
                stubCores = cpu && cpu.serverMainThread + cpu.serverOtherThreads;
                if (before) exportedInWindow = countsBetween(before, after);
              },
            },
          });
        } finally {
          scraped = await scraping.stop();
        }
        return { withRun: run, scrapes: scraped };
      },
    ));
  } finally {
    exportedTotal = await stopCollectorStub(stub);
  }
  return { without, with: withRun, metricsServedWithout, scrapes, exportedInWindow, exportedTotal, stubCores };
}


/** 7. observability cost: its row, and the problems (failed requests, a run not really observed) and notes of its two loads. */
function observabilityTarget(runs: ObservabilityRuns): { row: TargetRow; problems: string[]; notes: string[] } {
  const { without, with: on, scrapes, exportedInWindow: window, exportedTotal: total, stubCores } = runs;
  const ratio = on.load.requestsPerSecond / without.load.requestsPerSecond;
  const cpu = on.window.cpu;
  const withUs = mainThreadUsPerRequest(on.window, answered(on.load));
  const withoutUs = mainThreadUsPerRequest(without.window, answered(without.load));
  const stubText = stubCores !== undefined ? `, the collector stub ${stubCores.toFixed(2)} cores` : '';
  let why: string | undefined;
  if (ratio < TARGET && cpu && withUs !== undefined && withoutUs !== undefined) {
    const perRequest = `${withUs.toFixed(0)} µs of main-thread CPU per request with vs ${withoutUs.toFixed(0)} µs without (+${(withUs - withoutUs).toFixed(0)} µs: counting, spans, their export, the scrapes)`;
    const exportText =
      window && answered(on.load) > 0
        ? `; it made and exported ${(window.spans / answered(on.load)).toFixed(1)} spans, ${(window.bytes / answered(on.load) / 1024).toFixed(1)} KiB of OTLP per request, serialized on the main thread`
        : '';
    why = shortfallWhy(on.window, 'with-server', `${perRequest}${exportText}`, { alsoBusy: stubText });
  }

  const problems: string[] = [];
  const notes: string[] = [];
  for (const [name, load] of [['7. without', without.load], ['7. with', on.load]] as const) {
    // 503s are the queue policy at work: counted, not failures.
    if (load.non2xx - load.rejected + load.errors + load.timeouts > 0 || load.requests === 0) {
      problems.push(`${name}: ${load.requests} answered 2xx, ${load.non2xx - load.rejected} non-2xx other than 503, ${load.errors} errors, ${load.timeouts} timeouts`);
    }
    if (load.rejected > 0) notes.push(`${name}: ${int(load.rejected)} requests rejected (503, queue full); the rates count 2xx answers only`);
  }
  if (runs.metricsServedWithout) problems.push('7. without: the server answered on its METRICS_PORT although ALLOW_METRICS=false');
  // A with-run that exported nothing, or was not scraped, is not "with tracing and metrics".
  if (!total) problems.push('7. with: the collector stub printed no counts');
  else if (total.spans === 0) problems.push(`7. with: the collector stub received no span (${int(total.requests)} export requests): the run was not traced`);
  if (window && window.spans === 0) problems.push('7. with: no span was exported during the measured window: its figure does not include the export');
  if (total && total.malformed > 0) problems.push(`7. with: the collector stub could not read ${int(total.malformed)} of ${int(total.requests)} export requests`);
  if (scrapes.scrapes === 0 || scrapes.failed > 0) problems.push(`7. with: ${scrapes.failed} of ${scrapes.scrapes + scrapes.failed} scrapes of /metrics failed${scrapes.firstError ? ` (${scrapes.firstError})` : ''}`);
  else if (scrapes.classifierSuccesses === 0) problems.push('7. with: the last scrape of /metrics counted no classifier request: the metrics counted nothing');

  if (window) {
    const perRequest = on.load.requests > 0 ? window.spans / answered(on.load) : Number.NaN;
    notes.push(
      `7. with: the collector stub received ${int(window.requests)} export requests, ${int(window.bytes / 1024)} KiB, ${int(window.spans)} spans ` +
        `(${perRequest.toFixed(2)} per request answered) in the measured window${stubText}` +
        (total ? `; ${int(total.requests)} requests, ${int(total.bytes / 1024)} KiB, ${int(total.spans)} spans in all` : '') +
        (total && total.json + total.protobuf > 0 ? ` (${total.json > 0 && total.protobuf > 0 ? 'JSON and protobuf' : total.json > 0 ? 'OTLP/HTTP JSON' : 'OTLP/HTTP protobuf'})` : ''),
    );
  }
  const disturbance: [string, CpuUse | undefined, number][] = [
    ['7. without', without.window.cpu, 0],
    ['7. with', on.window.cpu, stubCores ?? 0],
  ];
  for (const [name, cpuUse, known] of disturbance) {
    const others = cpuUse && otherProcessesCores(cpuUse, known);
    if (others !== undefined && others >= 0.2) notes.push(`${name}: processes other than the server, the load generator and the collector stub took ${others.toFixed(2)} cores of the window: its figure is disturbed`);
  }
  notes.push(
    `7. with: ${int(scrapes.scrapes)} scrapes of /metrics, ${ms(scrapes.meanMs)} mean, ${ms(scrapes.maxMs)} max, ${int(scrapes.lastBytes / 1024)} KiB the last; ` +
      `it counted ${int(scrapes.classifierSuccesses)} classifier requests`,
  );
  const row: TargetRow = {
    id: 7,
    target: 'observability cost, req/s (classifier)',
    measured: `with metrics + tracing (${TRACE_SAMPLING * 100}% sampled) ${int(on.load.requestsPerSecond)} req/s`,
    baseline: `without ${int(without.load.requestsPerSecond)} req/s`,
    value: x(ratio),
    required: `>= ${x(TARGET)}`,
    met: ratio >= TARGET,
    why,
  };
  return { row, problems, notes };
}

const observabilityLoadText = (): string =>
  `7 on two servers one after the other, without (ALLOW_METRICS=false, no OTEL_*) then with (/metrics scraped every ${METRICS_SCRAPE_INTERVAL_MS / 1000} s, ` +
  `${TRACE_SAMPLING * 100}% of requests traced (parentbased_traceidratio), spans exported over OTLP/HTTP to a collector stub in its own process)`;

function observabilityScenariosJson(runs: ObservabilityRuns): Record<string, unknown> {
  const { without, with: on } = runs;
  return {
    observabilityWithout: { ...without.load, cpu: without.window.cpu, stats: without.window.stats, runs: without.window.figures && figuresJson(without.window.figures) },
    observabilityWith: {
      ...on.load,
      cpu: on.window.cpu,
      stats: on.window.stats,
      runs: on.window.figures && figuresJson(on.window.figures),
      exportedInWindow: runs.exportedInWindow,
      exportedTotal: runs.exportedTotal,
      collectorStubCores: runs.stubCores,
      scrapes: runs.scrapes,
    },
  };
}

export const observability: BenchRow = {
  name: 'observability',
  loads: 2,
  async run(bench) {
    const runs = await measureObservability(bench.demoRepository);
    const { row, problems, notes } = observabilityTarget(runs);
    return {
      rows: [row],
      problems,
      notes,
      loadText: observabilityLoadText(),
      settings: { metricsScrapeIntervalMs: METRICS_SCRAPE_INTERVAL_MS },
      figures: { observabilityRatio: runs.with.load.requestsPerSecond / runs.without.load.requestsPerSecond },
      scenarios: observabilityScenariosJson(runs),
      runs: [
        ['without', runs.without],
        ['with', runs.with],
      ],
    };
  },
};
