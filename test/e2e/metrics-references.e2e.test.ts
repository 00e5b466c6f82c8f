import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { classifierModel, TINY_GPT_NAME, writeTinyGptModel } from '../../scripts/build-models.js';
import { histogramBase, promqlReferences, type PromqlReferences } from '../support/promql-references.js';
import { makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';
import { parse as parseYaml } from 'yaml';
import { readRepoFile } from '../support/repo-files.js';

/**
 * The Grafana dashboard (docker/grafana/onnx-serving-dashboard.json), the alerting rules
 * (docker/prometheus/alerts.yaml) and the prometheus-adapter rule the autoscaler scales on
 * (docker/kubernetes/monitoring/prometheus-adapter-rules.yaml) against a running server: every metric their PromQL references is
 * exported (a `# TYPE` line for it or for its histogram), has series once the server has served
 * traffic, and carries the labels the expressions select and group by. A metric renamed in src/
 * without the dashboard or the alerts following fails here, not silently in Grafana.
 */

const read = readRepoFile;

/** Series Prometheus makes itself for each target: referenced by the alerts, never exported by the server. */
const PROMETHEUS_SERIES = new Set(['up']);
/**
 * Labels Prometheus attaches to every scraped series (the target's), absent from the exposition:
 * on Kubernetes (a ServiceMonitor) also the pod's namespace and name, which the adapter rule reads.
 */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod']);
/**
 * Label values the server can export without this test's traffic producing them: the failure reasons
 * (FAILURE_REASONS in src/domain/shared/domain-error.ts; one failing request shows
 * only one of them).
 */
const KNOWN_VALUES: Record<string, readonly string[]> = {
  reason: ['rejected', 'timeout', 'cancelled', 'invalid', 'runtime', 'unavailable', 'not_found'],
};
/** Inference and HTTP metrics the server exports that the dashboard deliberately does not show. */
const NOT_ON_DASHBOARD = new Set<string>();

// ---- The references: every PromQL expression of the dashboard and of the rules, with where it is ----

interface Reference {
  readonly where: string;
  readonly expr: string;
  readonly refs: PromqlReferences;
  /** For a Grafana `label_values(selector, label)` variable: the label it lists. */
  readonly listsLabel?: string;
}

interface Panel {
  readonly id: number;
  readonly title: string;
  readonly type: string;
  readonly targets?: readonly { readonly refId: string; readonly expr: string }[];
  readonly panels?: readonly Panel[];
}

function dashboardReferences(): Reference[] {
  const dashboard = JSON.parse(read('docker/grafana/onnx-serving-dashboard.json')) as {
    panels: Panel[];
    templating: { list: { name: string; type: string; query: string | { query: string } }[] };
  };
  const references: Reference[] = [];
  const visit = (panel: Panel): void => {
    for (const target of panel.targets ?? []) {
      const where = `dashboard panel ${panel.id} "${panel.title}" target ${target.refId}`;
      references.push({ where, expr: target.expr, refs: promqlReferences(target.expr) });
    }
    (panel.panels ?? []).forEach(visit);
  };
  dashboard.panels.forEach(visit);
  for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
    const match = /^label_values\((.+),\s*([A-Za-z_]\w*)\s*\)$/.exec(query.trim());
    assert.ok(match, `variable ${variable.name}: only label_values(selector, label) queries are checked: ${query}`);
    references.push({ where: `dashboard variable ${variable.name}`, expr: match[1]!, refs: promqlReferences(match[1]!), listsLabel: match[2]! });
  }
  return references;
}

function alertReferences(): Reference[] {
  const rules = parseYaml(read('docker/prometheus/alerts.yaml')) as { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
  return rules.groups.flatMap((group) =>
    group.rules.map((rule) => ({ where: `alert ${rule.alert ?? rule.record}`, expr: rule.expr, refs: promqlReferences(rule.expr) })),
  );
}

/** The series prometheus-adapter turns into the HorizontalPodAutoscaler's custom metric (docker/kubernetes/monitoring). */
function adapterReferences(): Reference[] {
  const configMap = parseYaml(read('docker/kubernetes/monitoring/prometheus-adapter-rules.yaml')) as { data: { 'config.yaml': string } };
  const config = parseYaml(configMap.data['config.yaml']) as { rules: { seriesQuery: string; name?: { as?: string } }[] };
  return config.rules.map((rule) => ({ where: `prometheus-adapter rule ${rule.name?.as ?? rule.seriesQuery}`, expr: rule.seriesQuery, refs: promqlReferences(rule.seriesQuery) }));
}

const references = [...dashboardReferences(), ...alertReferences(), ...adapterReferences()];
const scrapeJobs = (
  (parseYaml(read('docker/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string }[] }).scrape_configs
).map((c) => c.job_name);

// ---- The exposition, read as Prometheus reads it ----

interface Exposition {
  /** Metric family -> its TYPE (counter, gauge, histogram, summary, untyped). */
  readonly types: ReadonlyMap<string, string>;
  /** Series name (x, x_bucket, x_sum, ...) -> the label sets of its samples. */
  readonly samples: ReadonlyMap<string, readonly Record<string, string>[]>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples = new Map<string, Record<string, string>[]>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE ([A-Za-z_:][\w:]*) (\w+)\s*$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line.trim() === '' || line.startsWith('#')) continue;
    const sample = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+\S+(\s+\S+)?$/.exec(line);
    assert.ok(sample, `not a sample line: ${line}`);
    const labels = Object.fromEntries(
      [...(sample[2] ?? '').matchAll(/([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))]),
    );
    const list = samples.get(sample[1]!) ?? [];
    list.push(labels);
    samples.set(sample[1]!, list);
  }
  return { types, samples };
}

/** The exported family a referenced series belongs to: itself, or the histogram/summary of x_bucket/x_sum/x_count. */
function familyOf(name: string, exposition: Exposition): string | undefined {
  if (exposition.types.has(name)) return name;
  const base = histogramBase(name);
  if (base === undefined) return undefined;
  const type = exposition.types.get(base);
  if (type === 'histogram' || (type === 'summary' && !name.endsWith('_bucket'))) return base;
  return undefined;
}

/** The literal values a matcher's value stands for, or undefined when it is not literal (a variable, a real regex). */
function literalValues(op: string, value: string): string[] | undefined {
  if (value.includes('$')) return undefined;
  if (op === '=' || op === '!=') return [value];
  return /^[\w-]+(\|[\w-]+)*$/.test(value) ? value.split('|') : undefined;
}

describe('metrics referenced by the Grafana dashboard, the Prometheus alerts and the autoscaler', () => {
  let server: TestServer;
  let exposition: Exposition;

  before(async () => {
    const repository = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
    // The generative tiny_gpt too, so that the generation series (tokens, latencies, sequences, KV cache) exist.
    await writeTinyGptModel(join(repository, TINY_GPT_NAME));
    // An in-flight limit and a rate limit of 4 requests (no refill to speak of), so that their series
    // exist too; an ingress thread, so that the answers it sends itself are counted.
    server = await startTestServer(repository, { MAX_INFLIGHT_REQUESTS: '64', THROTTLE_RATE: '0.001', THROTTLE_BURST: '4', INGRESS_THREADS: '1' });
    const row = { name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] };
    // Two answered inferences (default version and a named one), a failed one and a throttled one,
    // so that the labelled series (successes, durations, batch sizes, failures by reason, HTTP
    // routes, throttled requests) exist.
    assert.equal((await postJson(`${server.url}/v2/models/classifier/infer`, { inputs: [row] })).status, 200);
    assert.equal((await postJson(`${server.url}/v2/models/classifier/versions/1/infer`, { inputs: [row] })).status, 200);
    const failed = await postJson(`${server.url}/v2/models/classifier/infer`, { inputs: [{ ...row, datatype: 'INT64', data: [5, 3, 1, 0] }] });
    assert.equal(failed.status, 400);
    assert.equal((await postJson(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { text_input: 'abc', parameters: { max_tokens: 3 } })).status, 200);
    assert.equal((await postJson(`${server.url}/v2/models/classifier/infer`, { inputs: [row] })).status, 429);
    const metricsUrl = server.server.metricsUrl;
    assert.ok(metricsUrl, 'the server serves no metrics');
    const response = await fetch(metricsUrl);
    assert.equal(response.status, 200);
    exposition = parseExposition(await response.text());
  });
  after(() => server?.close());

  it('finds references in every panel target, variable and rule', () => {
    assert.ok(references.length >= 30, `only ${references.length} expressions found`);
    for (const reference of references) assert.ok(reference.refs.selectors.length > 0, `${reference.where} selects no metric: ${reference.expr}`);
  });

  it('references only metrics the server exports (a # TYPE line for the metric or its histogram)', () => {
    const missing = references.flatMap((r) =>
      r.refs.selectors
        .filter((s) => !PROMETHEUS_SERIES.has(s.metric) && familyOf(s.metric, exposition) === undefined)
        .map((s) => `${r.where}: ${s.metric}`),
    );
    assert.deepEqual(missing, [], `not exported by the server:\n${missing.join('\n')}`);
  });

  it('references series that have samples once the server has served traffic', () => {
    const empty = references.flatMap((r) =>
      r.refs.selectors
        .filter((s) => !PROMETHEUS_SERIES.has(s.metric) && (exposition.samples.get(s.metric) ?? []).length === 0)
        .map((s) => `${r.where}: ${s.metric}`),
    );
    assert.deepEqual(empty, [], `no samples in the scrape:\n${empty.join('\n')}`);
  });

  it('selects on labels the metrics carry, with values they take', () => {
    const problems: string[] = [];
    for (const r of references) {
      for (const selector of r.refs.selectors) {
        if (PROMETHEUS_SERIES.has(selector.metric)) continue;
        const series = exposition.samples.get(selector.metric) ?? [];
        const labels = new Set(series.flatMap((labelSet) => Object.keys(labelSet)));
        for (const matcher of selector.matchers) {
          if (TARGET_LABELS.has(matcher.label)) {
            const values = literalValues(matcher.op, matcher.value);
            if (matcher.label === 'job' && values) for (const v of values) if (!scrapeJobs.includes(v)) problems.push(`${r.where}: job "${v}" is not a job of prometheus.yml`);
            continue;
          }
          if (!labels.has(matcher.label)) {
            problems.push(`${r.where}: ${selector.metric} has no label ${matcher.label} (it has ${[...labels].join(', ') || 'none'})`);
            continue;
          }
          const observed = new Set([...series.map((l) => l[matcher.label]!), ...(KNOWN_VALUES[matcher.label] ?? [])]);
          for (const value of literalValues(matcher.op, matcher.value) ?? []) {
            if (!observed.has(value)) problems.push(`${r.where}: ${selector.metric}{${matcher.label}} never takes "${value}" (seen: ${[...observed].join(', ')})`);
          }
        }
      }
      // up{job="..."}: the job must be one prometheus.yml scrapes.
      for (const selector of r.refs.selectors.filter((s) => PROMETHEUS_SERIES.has(s.metric))) {
        for (const matcher of selector.matchers.filter((m) => m.label === 'job')) {
          for (const v of literalValues(matcher.op, matcher.value) ?? []) if (!scrapeJobs.includes(v)) problems.push(`${r.where}: job "${v}" is not a job of prometheus.yml`);
        }
      }
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  it('groups, matches and lists by labels that exist', () => {
    const problems: string[] = [];
    for (const r of references) {
      const available = new Set([...TARGET_LABELS, ...r.refs.createdLabels]);
      for (const selector of r.refs.selectors) {
        for (const labelSet of exposition.samples.get(selector.metric) ?? []) for (const label of Object.keys(labelSet)) available.add(label);
      }
      for (const label of [...r.refs.groupingLabels, ...(r.listsLabel ? [r.listsLabel] : [])]) {
        if (!available.has(label)) problems.push(`${r.where}: no referenced metric has the label ${label}: ${r.expr}`);
      }
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  it('shows every inference, model and HTTP metric the server exports on the dashboard', () => {
    const onDashboard = new Set(
      references
        .filter((r) => r.where.startsWith('dashboard'))
        .flatMap((r) => r.refs.selectors.map((s) => familyOf(s.metric, exposition) ?? s.metric)),
    );
    const exported = [...exposition.types.keys()].filter((name) => /^(inference_|model_|http_)/.test(name));
    assert.ok(exported.length >= 13, `expected the inference and HTTP metrics in the scrape, found ${exported.join(', ')}`);
    const absent = exported.filter((name) => !onDashboard.has(name) && !NOT_ON_DASHBOARD.has(name));
    assert.deepEqual(absent, [], `exported but on no panel (add a panel, or list it in NOT_ON_DASHBOARD): ${absent.join(', ')}`);
  });
});
