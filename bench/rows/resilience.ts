/**
 * Row 8, the resilience cost: what rate limits and in-flight limits cost when they are on but never
 * refuse. Three server processes on the demo classifier, one after the other, the loop of 1 on
 * each, every request carrying an x-api-key header: the baseline (THROTTLE_RATE=0,
 * MAX_INFLIGHT_REQUESTS=0), then with a per-client rate limit far above the load
 * (THROTTLE_RATE=THROTTLE_BURST=1000000, THROTTLE_CLIENT_HEADER=x-api-key) and a fixed cap of 100000
 * in flight, then the same with ADAPTIVE_CONCURRENCY=true (the cap being its ceiling). Circuit
 * breakers have no off switch: they are on in all three. Metrics on, tracing off. With / without
 * req/s for each with-run, and p99s. Target >= 0.95x. Any refusal (429, 503) in a measured window,
 * or a with-server whose limits were not on (its checked answer without X-RateLimit-Limit, no
 * inference_concurrency_limit gauge), is not a valid figure.
 */
import { DEFAULT_GRADIENT } from '../../src/domain/inference/concurrency-limit.js';
import type { BenchRow } from '../bench-row.js';
import { envCleared, onClassifierServer, settings, type RunningServer } from '../harness.js';
import { classifierLoop, type ClosedLoopRun } from '../measure.js';
import { fetchMetricsText, sampleSum, samplesOf } from '../prometheus.js';
import { answered, figuresJson, int, mainThreadUsPerRequest, ms, otherProcessesCores, pct, shortfallWhy, x, type TargetRow } from '../report.js';
import { CLASSIFIER } from '../workloads.js';

const TARGET = 0.95;

/**
 * 8's settings: a per-client rate limit and a fixed in-flight cap far above anything the load can
 * reach (BENCH_CONNECTIONS is at most 10,000), the client named by a header every request carries.
 */
const RESILIENCE_THROTTLE_RATE = 1_000_000;
const RESILIENCE_MAX_INFLIGHT = 100_000;
const RESILIENCE_CLIENT_HEADER = 'x-api-key';
const RESILIENCE_HEADERS = { [RESILIENCE_CLIENT_HEADER]: 'bench-client' };

type ResilienceSetup = 'baseline' | 'fixed' | 'adaptive';

const RESILIENCE_SETUPS: Record<ResilienceSetup, string> = {
  baseline: 'no rate limit, no in-flight limit',
  fixed: `rate limit ${RESILIENCE_THROTTLE_RATE.toLocaleString('en-US')}/s per ${RESILIENCE_CLIENT_HEADER}, in-flight cap ${RESILIENCE_MAX_INFLIGHT.toLocaleString('en-US')}`,
  adaptive: `rate limit, adaptive in-flight limit (ceiling ${RESILIENCE_MAX_INFLIGHT.toLocaleString('en-US')})`,
};

/**
 * 8's server environment: metrics on (the bench reads them), tracing off (onClassifierServer),
 * the bench's own THROTTLE_*, BREAKER_*, in-flight and fault settings cleared (breakers at their
 * defaults), then the setup's.
 */
function resilienceEnv(setup: ResilienceSetup): Record<string, string> {
  const limits: Record<string, string> =
    setup === 'baseline'
      ? { THROTTLE_RATE: '0', MAX_INFLIGHT_REQUESTS: '0' }
      : {
          THROTTLE_RATE: String(RESILIENCE_THROTTLE_RATE),
          THROTTLE_BURST: String(RESILIENCE_THROTTLE_RATE),
          THROTTLE_CLIENT_HEADER: RESILIENCE_CLIENT_HEADER,
          // With ADAPTIVE_CONCURRENCY, the adaptive limit's ceiling.
          MAX_INFLIGHT_REQUESTS: String(RESILIENCE_MAX_INFLIGHT),
        };
  return {
    ...envCleared('THROTTLE_', 'BREAKER_', 'MAX_INFLIGHT_REQUESTS', 'ADAPTIVE_CONCURRENCY', 'FAULT_INJECTION'),
    ALLOW_METRICS: 'true',
    ...limits,
    ADAPTIVE_CONCURRENCY: String(setup === 'adaptive'),
  };
}

/** What a server's /metrics said of the demo classifier at one moment (8). */
interface ResilienceCounters {
  /** inference_request_failure_total by reason, those above 0 (refusals for load are `rejected`). */
  readonly failures: Readonly<Record<string, number>>;
  /** throttled_requests_total, every transport: requests refused with 429 / RESOURCE_EXHAUSTED. */
  readonly throttled: number;
  /** inference_concurrency_limit: the in-flight limit, where the adaptive one stands (undefined: no limit). */
  readonly limit?: number;
  /** The state whose inference_circuit_breaker_state is 1 (undefined: no breaker). */
  readonly breaker?: string;
}

async function readResilienceCounters(server: RunningServer): Promise<ResilienceCounters> {
  const text = await fetchMetricsText(server.metricsUrl);
  const model = { model: CLASSIFIER };
  const failures: Record<string, number> = {};
  for (const { labels, value } of samplesOf(text, 'inference_request_failure_total', model)) {
    const reason = labels.reason ?? 'unknown';
    if (value > 0) failures[reason] = (failures[reason] ?? 0) + value;
  }
  const limits = samplesOf(text, 'inference_concurrency_limit', model).map((sample) => sample.value);
  return {
    failures,
    throttled: sampleSum(text, 'throttled_requests_total'),
    limit: limits.length > 0 ? Math.min(...limits) : undefined,
    breaker: samplesOf(text, 'inference_circuit_breaker_state', model).find((sample) => sample.value === 1)?.labels.state,
  };
}

interface ResilienceRun {
  readonly setup: ResilienceSetup;
  readonly run: ClosedLoopRun;
  /** X-RateLimit-Limit of the checked request's answer: set when the throttle guard ran, null when it was skipped (throttling off). */
  readonly rateLimitHeader: string | null;
  /** The server's counters when the measured run started (after the checked request and the warm-up) and when it ended. */
  readonly atStart: ResilienceCounters;
  readonly atEnd: ResilienceCounters;
}

type ResilienceRuns = Readonly<Record<ResilienceSetup, ResilienceRun>>;

/**
 * 8: the demo classifier under the loop of 1, every request (the checked one too) naming its client
 * in RESILIENCE_CLIENT_HEADER, on a server without rate and in-flight limits, then with both (a
 * fixed cap), then with both (the adaptive limit); the counters read around each measured run.
 */
async function measureResilience(demoRepository: string): Promise<ResilienceRuns> {
  const measure = (setup: ResilienceSetup): Promise<ResilienceRun> =>
    onClassifierServer(
      `server-resilience-${setup}`,
      demoRepository,
      resilienceEnv(setup),
      async (server, checked) => {
        const read: { atStart?: ResilienceCounters; atEnd?: ResilienceCounters } = {};
        const run = await classifierLoop(`8. server, classifier, ${RESILIENCE_SETUPS[setup]}`, server, {
          headers: RESILIENCE_HEADERS,
          around: {
            onMeasureStart: async () => {
              read.atStart = await readResilienceCounters(server);
            },
            onMeasureEnd: async () => {
              read.atEnd = await readResilienceCounters(server);
            },
          },
        });
        if (!read.atStart || !read.atEnd) throw new Error(`8. ${setup}: the server's /metrics were not read around the measured run`);
        return { setup, run, rateLimitHeader: checked.headers.get('x-ratelimit-limit'), atStart: read.atStart, atEnd: read.atEnd };
      },
      { headers: RESILIENCE_HEADERS },
    );
  const baseline = await measure('baseline');
  const fixed = await measure('fixed');
  const adaptive = await measure('adaptive');
  return { baseline, fixed, adaptive };
}

const sumOf = (counts: Readonly<Record<string, number>>): number => Object.values(counts).reduce((a, b) => a + b, 0);
const countsText = (counts: Readonly<Record<string, number>>): string =>
  Object.entries(counts)
    .map(([key, count]) => `${int(count)} ${key}`)
    .join(', ') || 'none';

function failuresBetween(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>): Record<string, number> {
  const between: Record<string, number> = {};
  for (const [reason, count] of Object.entries(after)) if (count - (before[reason] ?? 0) > 0) between[reason] = count - (before[reason] ?? 0);
  return between;
}

/** 8. resilience cost: its row, and the problems (a refusal, limits not on where they should be, or on where not) and notes of its three loads. */
function resilienceTarget(runs: ResilienceRuns): { row: TargetRow; problems: string[]; notes: string[] } {
  const { baseline, fixed, adaptive } = runs;
  const ratioOf = (r: ResilienceRun): number => r.run.load.requestsPerSecond / baseline.run.load.requestsPerSecond;
  const baselineUs = mainThreadUsPerRequest(baseline.run.window, answered(baseline.run.load));
  const baselineOthers = baseline.run.window.cpu && otherProcessesCores(baseline.run.window.cpu);

  const reasons: string[] = [];
  for (const r of [fixed, adaptive]) {
    const ratio = ratioOf(r);
    if (ratio >= TARGET) continue;
    const parts: string[] = [];
    const load = r.run.load;
    if (load.non2xx > 0) parts.push(`${int(load.non2xx)} requests refused (${countsText(load.non2xxByStatus)}), which the rate does not count`);
    const rejectedInWindow = (r.atEnd.failures.rejected ?? 0) - (r.atStart.failures.rejected ?? 0);
    if (r.setup === 'adaptive' && rejectedInWindow > 0) {
      const { atStart: { limit: from }, atEnd: { limit: to } } = r;
      parts.push(
        `the adaptive limit refused ${int(rejectedInWindow)} in the measured window` +
          (from !== undefined && to !== undefined && Math.min(from, to) >= settings.connections
            ? `, though it read ${int(from)} when the run started and ${int(to)} when it ended: it fell below the ${settings.connections} connections in between`
            : ` (it read ${from ?? '-'} when the run started and ${to ?? '-'} when it ended, for ${settings.connections} connections)`) +
          ` - the gradient shrinks it when recent latency rises past ${DEFAULT_GRADIENT.tolerance}x its baseline, and latency here was p50 ${ms(load.p50Ms)}, p99 ${ms(load.p99Ms)} ` +
          `(baseline server: p50 ${ms(baseline.run.load.p50Ms)}, p99 ${ms(baseline.run.load.p99Ms)})`,
      );
    }
    const withUs = mainThreadUsPerRequest(r.run.window, answered(load));
    if (withUs !== undefined && baselineUs !== undefined) {
      const delta = withUs - baselineUs;
      const perRequest =
        `${withUs.toFixed(1)} µs of main-thread CPU per request with vs ${baselineUs.toFixed(1)} µs without ` +
        (delta > 0
          ? `(+${delta.toFixed(1)} µs: the throttle guard and its token bucket, the in-flight permit${r.setup === 'adaptive' ? ' and the gradient' : ''})`
          : `(${delta.toFixed(1)} µs: no more than without, within the noise)`);
      const why = shortfallWhy(r.run.window, 'with-server', perRequest);
      if (why) parts.push(why);
      // Main-thread bound, a rate falls by at most the share its CPU per request grew by; a larger fall came from elsewhere.
      const explained = delta > 0 ? 1 - baselineUs / withUs : 0;
      if (explained < 1 - ratio - 0.01) {
        const others = r.run.window.cpu && otherProcessesCores(r.run.window.cpu);
        parts.push(
          `its CPU per request explains at most ${pct(explained)} of the ${pct(1 - ratio)} the rate fell: the rest is not the limits' cost but the machine` +
            (others !== undefined && baselineOthers !== undefined
              ? ` (processes other than the server and the load generator took ${others.toFixed(2)} cores of this window, ${baselineOthers.toFixed(2)} of the baseline's)`
              : ''),
        );
      }
    }
    reasons.push(`${r.setup} ${x(ratio, 3)}: ${parts.join('; ') || 'no figure of the run tells why'}`);
  }

  const problems: string[] = [];
  const notes: string[] = [];
  for (const r of [baseline, fixed, adaptive]) {
    const name = `8. ${r.setup}`;
    const load = r.run.load;
    // No refusal of any kind here: a 503 or 429 means a limit bit, and the run is not "on but never refusing".
    if (load.non2xx + load.errors + load.timeouts > 0 || load.requests === 0) {
      problems.push(`${name}: ${int(load.requests)} answered 2xx, ${int(load.non2xx)} other statuses (${countsText(load.non2xxByStatus)}), ${load.errors} errors, ${load.timeouts} timeouts`);
    }
    // The server's own count, by reason. `cancelled` is the load generator closing its connections
    // at the end of a run with requests in flight: its doing, not a refusal.
    const { cancelled: cancelledInWindow = 0, ...inWindow } = failuresBetween(r.atStart.failures, r.atEnd.failures);
    if (sumOf(inWindow) > 0) problems.push(`${name}: the server counted failures of the classifier in the measured window (${countsText(inWindow)})`);
    if (r.atEnd.throttled > 0) problems.push(`${name}: ${int(r.atEnd.throttled)} requests throttled (429) since the server started (throttled_requests_total)`);
    // Since the server started: the checked request answered 200, so these are the warm-up's.
    const { cancelled: cancelledInWarmup = 0, rejected: rejectedInWarmup = 0, ...otherInWarmup }: Record<string, number> = { ...r.atStart.failures };
    if (rejectedInWarmup > 0 && r.setup === 'adaptive') {
      // The gradient starts low and rises with the samples: a ramp, outside the measured window.
      notes.push(
        `${name}: ${int(rejectedInWarmup)} requests refused in the warm-up, before the adaptive limit had risen from its initial ${DEFAULT_GRADIENT.initial} ` +
          `to hold the ${settings.connections} connections (it stood at ${r.atStart.limit ?? '-'} when the measured run started): the gradient's start, outside the measured window`,
      );
    } else if (rejectedInWarmup > 0) otherInWarmup.rejected = rejectedInWarmup;
    if (sumOf(otherInWarmup) > 0) problems.push(`${name}: the server counted failures of the classifier in the warm-up (${countsText(otherInWarmup)})`);
    if (cancelledInWarmup + cancelledInWindow > 0) {
      notes.push(`${name}: ${int(cancelledInWarmup + cancelledInWindow)} requests cancelled by the load generator closing its connections at the end of a run (not refusals)`);
    }
    if (r.atStart.breaker !== 'closed' || r.atEnd.breaker !== 'closed') {
      problems.push(`${name}: the classifier's circuit breaker was ${r.atStart.breaker ?? 'absent'} when the measured run started and ${r.atEnd.breaker ?? 'absent'} when it ended (closed expected)`);
    }
    const others = r.run.window.cpu && otherProcessesCores(r.run.window.cpu);
    if (others !== undefined && others >= 0.2) notes.push(`${name}: processes other than the server and the load generator took ${others.toFixed(2)} cores of the window: its figure is disturbed`);
  }
  // The baseline had neither limit, the with-servers both.
  if (baseline.rateLimitHeader !== null) problems.push(`8. baseline: the checked answer carried X-RateLimit-Limit ${baseline.rateLimitHeader}: throttling was on`);
  if (baseline.atEnd.limit !== undefined) problems.push(`8. baseline: inference_concurrency_limit is ${baseline.atEnd.limit}: an in-flight limit was on`);
  for (const r of [fixed, adaptive]) {
    if (r.rateLimitHeader !== String(RESILIENCE_THROTTLE_RATE)) {
      problems.push(`8. ${r.setup}: the checked answer's X-RateLimit-Limit was ${r.rateLimitHeader ?? 'absent'}, not ${RESILIENCE_THROTTLE_RATE}: the throttle guard did not run on the HTTP infer route, throttling was not on as configured`);
    }
    if (r.atEnd.limit === undefined) problems.push(`8. ${r.setup}: the classifier has no inference_concurrency_limit: its in-flight limit was not on`);
  }
  if (fixed.atEnd.limit !== undefined && fixed.atEnd.limit !== RESILIENCE_MAX_INFLIGHT) {
    problems.push(`8. fixed: inference_concurrency_limit is ${fixed.atEnd.limit}, not MAX_INFLIGHT_REQUESTS=${RESILIENCE_MAX_INFLIGHT}`);
  }
  notes.push(
    `8: circuit breakers are on in all three servers (they have no off switch; BREAKER_* at their defaults) and the classifier's stayed closed` +
      ` whenever read; the row is the cost of the rate limit and the in-flight limit on top of them`,
  );
  notes.push(
    `8. adaptive: inference_concurrency_limit stood at ${adaptive.atStart.limit ?? '-'} when the measured run started and ${adaptive.atEnd.limit ?? '-'} when it ended ` +
      `(initial ${DEFAULT_GRADIENT.initial}, ceiling ${int(RESILIENCE_MAX_INFLIGHT)}; ${settings.connections} connections)`,
  );
  for (const r of [baseline, fixed, adaptive]) notes.push(`8. ${r.setup}: ${int(r.run.load.requestsPerSecond)} req/s, p50 ${ms(r.run.load.p50Ms)}, p99 ${ms(r.run.load.p99Ms)}`);

  const fixedRatio = ratioOf(fixed);
  const adaptiveRatio = ratioOf(adaptive);
  const rateAndP99 = (r: ResilienceRun): string => `${int(r.run.load.requestsPerSecond)} req/s, p99 ${ms(r.run.load.p99Ms)}`;
  const row: TargetRow = {
    id: 8,
    target: 'resilience cost, req/s (classifier)',
    measured: `rate limit + in-flight cap: ${rateAndP99(fixed)}; + adaptive limit: ${rateAndP99(adaptive)}`,
    baseline: `THROTTLE_RATE=0, MAX_INFLIGHT_REQUESTS=0: ${rateAndP99(baseline)}`,
    // Three digits: the target leaves 5%, and 0.946 is not 0.95.
    value: `${x(fixedRatio, 3)} / ${x(adaptiveRatio, 3)}`,
    required: `>= ${x(TARGET)}`,
    met: fixedRatio >= TARGET && adaptiveRatio >= TARGET,
    why: reasons.length > 0 ? reasons.join('; ') : undefined,
  };
  return { row, problems, notes };
}

const resilienceLoadText = (): string =>
  `8 on three servers one after the other, every request with an ${RESILIENCE_CLIENT_HEADER} header: baseline (THROTTLE_RATE=0, MAX_INFLIGHT_REQUESTS=0), ` +
  `then THROTTLE_RATE=THROTTLE_BURST=${RESILIENCE_THROTTLE_RATE} per ${RESILIENCE_CLIENT_HEADER} with MAX_INFLIGHT_REQUESTS=${RESILIENCE_MAX_INFLIGHT}, ` +
  `then the same with ADAPTIVE_CONCURRENCY=true (ceiling ${RESILIENCE_MAX_INFLIGHT}); circuit breakers on in all three, metrics on (not scraped), no tracing`;

const resilienceRatios = (runs: ResilienceRuns): { fixed: number; adaptive: number } => ({
  fixed: runs.fixed.run.load.requestsPerSecond / runs.baseline.run.load.requestsPerSecond,
  adaptive: runs.adaptive.run.load.requestsPerSecond / runs.baseline.run.load.requestsPerSecond,
});

function resilienceScenariosJson(runs: ResilienceRuns): Record<string, unknown> {
  const json = ({ run, rateLimitHeader, atStart, atEnd }: ResilienceRun): object => ({
    ...run.load,
    cpu: run.window.cpu,
    stats: run.window.stats,
    runs: run.window.figures && figuresJson(run.window.figures),
    rateLimitHeader,
    countersAtStart: atStart,
    countersAtEnd: atEnd,
  });
  return { resilienceBaseline: json(runs.baseline), resilienceFixed: json(runs.fixed), resilienceAdaptive: json(runs.adaptive) };
}

export const resilience: BenchRow = {
  name: 'resilience',
  loads: 3,
  async run(bench) {
    const runs = await measureResilience(bench.demoRepository);
    const { row, problems, notes } = resilienceTarget(runs);
    return {
      rows: [row],
      problems,
      notes,
      loadText: resilienceLoadText(),
      settings: { resilience: { throttleRate: RESILIENCE_THROTTLE_RATE, maxInflightRequests: RESILIENCE_MAX_INFLIGHT, clientHeader: RESILIENCE_CLIENT_HEADER } },
      figures: { resilienceRatio: resilienceRatios(runs) },
      scenarios: resilienceScenariosJson(runs),
      runs: [
        ['baseline', runs.baseline.run],
        ['fixed', runs.fixed.run],
        ['adaptive', runs.adaptive.run],
      ],
    };
  },
};
