// Static checks of the monitoring files under docker/: the Grafana dashboard, the Prometheus rules
// and configuration, Grafana's provisioning, and the optional services of compose.yaml that wire
// them together. No Docker, Prometheus or Grafana runs here, so the files are parsed and checked
// against each other; that every metric they reference is exported is checked against a running
// server by test/e2e/metrics-references.e2e.test.ts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PROMQL_AGGREGATIONS, PROMQL_FUNCTIONS, histogramBase, metricNames, promqlReferences } from '../../support/promql-references.js';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, readRepoFile } from '../../support/repo-files.js';

const root = REPO_ROOT;
const read = readRepoFile;

type Yaml = { [key: string]: any };
const yaml = (file: string): Yaml => parseYaml(read(file)) as Yaml;

// ---- The test readers themselves ----

describe('the PromQL reference reader (test/support/promql-references.ts)', () => {
  it('finds metric names, not functions, keywords, labels, strings, durations or Grafana variables', () => {
    const expr =
      'histogram_quantile(0.99, sum by (model, le) (rate(a_seconds_bucket{model=~"$model", reason="x"}[$__rate_interval]))) > 1e3 ' +
      'and on (job) group_left b_total offset 5m or sum(rate(c_total[5m])) by (le) / ignoring(x) d ' +
      '+ label_replace(e, "dst", "${1}xx", "status", "(.)..") + {__name__="f_total"} unless bool Inf';
    const refs = promqlReferences(expr);
    assert.deepEqual(metricNames(expr), ['a_seconds_bucket', 'b_total', 'c_total', 'd', 'e', 'f_total']);
    assert.deepEqual(refs.selectors[0]!.matchers, [
      { label: 'model', op: '=~', value: '$model' },
      { label: 'reason', op: '=', value: 'x' },
    ]);
    assert.deepEqual([...refs.functions].sort(), ['histogram_quantile', 'label_replace', 'rate', 'sum']);
    assert.deepEqual([...refs.groupingLabels].sort(), ['job', 'le', 'model', 'x']);
    assert.deepEqual([...refs.createdLabels], ['dst']);
  });

  it('refuses a selector whose metric it cannot name', () => {
    assert.throws(() => promqlReferences('sum(rate({job="x"}[5m]))'), /without a metric name/);
  });

  it('maps histogram series to their histogram', () => {
    assert.equal(histogramBase('x_seconds_bucket'), 'x_seconds');
    assert.equal(histogramBase('x_seconds_count'), 'x_seconds');
    assert.equal(histogramBase('inference_count_total'), undefined);
  });
});

// ---- The dashboard ----

interface Target {
  readonly refId?: string;
  readonly expr?: string;
  readonly datasource?: { readonly type?: string; readonly uid?: string };
}
interface Panel {
  readonly id?: number;
  readonly type?: string;
  readonly title?: string;
  readonly datasource?: { readonly type?: string; readonly uid?: string };
  readonly targets?: readonly Target[];
  readonly gridPos?: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly panels?: readonly Panel[];
}

const DASHBOARD_FILE = 'docker/grafana/onnx-serving-dashboard.json';
const ROWS = ['Traffic', 'Latency', 'Batching', 'Saturation', 'Models', 'HTTP', 'Process', 'Resilience', 'Async inference jobs', 'Generation'];
const GRAFANA_BUILTINS = new Set(['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms', '__dashboard', '__from', '__to']);

describe(DASHBOARD_FILE, () => {
  const dashboard = JSON.parse(read(DASHBOARD_FILE)) as {
    uid?: string;
    title?: string;
    schemaVersion?: number;
    panels: Panel[];
    templating: { list: { name: string; type: string; query: unknown; datasource?: { uid?: string } }[] };
  };
  const all: Panel[] = [];
  const visit = (p: Panel): void => {
    all.push(p);
    (p.panels ?? []).forEach(visit);
  };
  dashboard.panels.forEach(visit);
  const queryPanels = all.filter((p) => p.type !== 'row');
  const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));

  it('is a dashboard of the schema of Grafana 10/11 with a uid and a title', () => {
    assert.ok(typeof dashboard.schemaVersion === 'number' && dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
    assert.equal(dashboard.uid, 'onnx-serving');
    assert.ok(dashboard.title);
  });

  it('has a Prometheus ${datasource} variable and model / version variables from label_values', () => {
    const datasource = variables.get('datasource');
    assert.equal(datasource?.type, 'datasource');
    assert.equal(datasource?.query, 'prometheus');
    for (const name of ['model', 'version']) {
      const variable = variables.get(name);
      assert.equal(variable?.type, 'query', `no query variable ${name}`);
      const query = typeof variable.query === 'string' ? variable.query : (variable.query as { query: string }).query;
      assert.match(query, new RegExp(`^label_values\\(.+,\\s*${name}\\)$`));
      assert.equal(variable.datasource?.uid, '${datasource}');
    }
  });

  it('has the rows Traffic, Latency, Batching, Saturation, Models, HTTP, Process, Resilience, Async inference jobs and Generation, in that order', () => {
    assert.deepEqual(all.filter((p) => p.type === 'row').map((p) => p.title), ROWS);
  });

  it('gives every panel a unique id', () => {
    const ids = all.map((p) => p.id);
    for (const id of ids) assert.ok(Number.isInteger(id) && id! > 0, `panel id ${id}`);
    assert.equal(new Set(ids).size, ids.length, `duplicate panel ids: ${ids.join(', ')}`);
  });

  it('gives every panel the ${datasource} Prometheus data source and at least one target with an expression', () => {
    assert.ok(queryPanels.length >= 20, `only ${queryPanels.length} panels`);
    for (const panel of queryPanels) {
      const name = `panel ${panel.id} "${panel.title}"`;
      assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `${name}: datasource`);
      assert.ok((panel.targets ?? []).length > 0, `${name} has no target`);
      const refIds = panel.targets!.map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${name}: duplicate refIds ${refIds.join(', ')}`);
      for (const target of panel.targets!) {
        assert.ok(target.expr && target.expr.trim() !== '', `${name} target ${target.refId} has no expr`);
        assert.deepEqual(target.datasource, panel.datasource, `${name} target ${target.refId}: datasource`);
      }
    }
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    const placed = all.map((p) => ({ id: p.id, ...p.gridPos! }));
    for (const p of placed) assert.ok(p.w > 0 && p.h > 0 && p.x >= 0 && p.x + p.w <= 24, `panel ${p.id}: gridPos ${JSON.stringify(p)}`);
    for (const [i, a] of placed.entries()) {
      for (const b of placed.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        assert.ok(!overlap, `panels ${a.id} and ${b.id} overlap`);
      }
    }
  });

  const targets = queryPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr ?? '' })));

  it('uses only variables it defines (or Grafana built-ins)', () => {
    for (const { where, expr } of targets) {
      for (const [, braced, plain] of expr.matchAll(/\$(?:\{(\w+)[^}]*\}|(\w+))/g)) {
        const name = braced ?? plain!;
        // ${1} is label_replace's capture group, not a variable (Grafana leaves unknown names alone).
        if (/^\d+$/.test(name)) continue;
        assert.ok(variables.has(name) || GRAFANA_BUILTINS.has(name), `${where}: unknown variable $${name}`);
      }
    }
  });

  it('writes PromQL that calls only PromQL functions and filters inference series by $model and $version', () => {
    for (const { where, expr } of targets) {
      const refs = promqlReferences(expr);
      for (const f of refs.functions) assert.ok(PROMQL_FUNCTIONS.has(f) || PROMQL_AGGREGATIONS.has(f), `${where}: ${f} is not a PromQL function`);
      for (const selector of refs.selectors.filter((s) => /^(inference_|model_version_state)/.test(s.metric))) {
        const labels = new Map(selector.matchers.map((m) => [m.label, m.value]));
        assert.equal(labels.get('model'), '$model', `${where}: ${selector.metric} is not filtered by $model`);
        // The "no READY version" count looks at every version of a model on purpose.
        if (!/no READY version/.test(where)) assert.equal(labels.get('version'), '$version', `${where}: ${selector.metric} is not filtered by $version`);
      }
      if (refs.functions.has('histogram_quantile')) {
        assert.ok(refs.selectors.every((s) => s.metric.endsWith('_bucket')), `${where}: histogram_quantile over a non-bucket series`);
        assert.ok(refs.groupingLabels.has('le'), `${where}: histogram_quantile without "by (le)"`);
      }
    }
  });
});

// ---- The alerting rules ----

const ALERTS_FILE = 'docker/prometheus/alerts.yaml';

describe(ALERTS_FILE, () => {
  const rules = yaml(ALERTS_FILE) as { groups: { name: string; rules: Yaml[] }[] };
  const alerts = rules.groups.flatMap((g) => g.rules);
  const byName = new Map(alerts.map((a) => [a.alert as string, a]));

  it('parses as Prometheus rule groups with uniquely named groups and alerts', () => {
    assert.ok(Array.isArray(rules.groups) && rules.groups.length > 0);
    const groups = rules.groups.map((g) => g.name);
    assert.equal(new Set(groups).size, groups.length, `duplicate groups ${groups.join(', ')}`);
    assert.equal(byName.size, alerts.length, 'duplicate alert names');
  });

  it('gives every rule an expression, a duration, a severity and a summary and description', () => {
    for (const rule of alerts) {
      const name = rule.alert as string;
      assert.match(name, /^[A-Z][A-Za-z0-9]+$/);
      assert.equal(typeof rule.expr, 'string', `${name}: expr`);
      assert.match(rule.for, /^\d+[smh]$/, `${name}: for`);
      assert.ok(['critical', 'warning'].includes(rule.labels?.severity), `${name}: severity ${rule.labels?.severity}`);
      for (const key of ['summary', 'description']) {
        const annotation = rule.annotations?.[key] as string | undefined;
        assert.ok(annotation && annotation.trim() !== '', `${name}: no ${key}`);
        assert.equal(annotation.split('{{').length, annotation.split('}}').length, `${name}: unbalanced {{ }} in ${key}`);
      }
      const refs = promqlReferences(rule.expr);
      for (const f of refs.functions) assert.ok(PROMQL_FUNCTIONS.has(f) || PROMQL_AGGREGATIONS.has(f), `${name}: ${f} is not a PromQL function`);
      assert.equal((rule.expr as string).split('(').length, (rule.expr as string).split(')').length, `${name}: unbalanced parentheses`);
    }
  });

  it('names the model in what the per-model alerts (inference and model groups) say', () => {
    for (const group of rules.groups.filter((g) => /inference|models/.test(g.name))) {
      for (const rule of group.rules) {
        assert.match(`${rule.annotations.summary} ${rule.annotations.description}`, /\{\{ \$labels\.model \}\}/, `${rule.alert} does not name the model`);
        assert.ok(promqlReferences(rule.expr).groupingLabels.size === 0 || promqlReferences(rule.expr).groupingLabels.has('model'), `${rule.alert} aggregates the model label away`);
      }
    }
  });

  const expectations: [string, string, RegExp[]][] = [
    ['InferenceErrorRateHigh', '5m', [/reason=~"runtime\|timeout"/, /inference_request_success_total/, /> 0\.05\s*$/]],
    ['InferenceQueueSaturated', '2m', [/reason="rejected"/, /inference_pending_requests\)? > \d+/]],
    ['InferenceLatencyP99High', '10m', [/histogram_quantile\(0\.99,/, /inference_request_duration_seconds_bucket/, /> 1\s*$/]],
    ['ModelVersionUnavailable', '1m', [/model_version_state\{state="UNAVAILABLE"\} == 1/]],
    ['NoReadyVersion', '5m', [/model_version_state\{state="READY"\}/, /== 0\s*$/]],
    ['EventLoopLagHigh', '5m', [/nodejs_eventloop_lag_p99_seconds > 0\.1/]],
    ['InferenceWorkerExited', '0m', [/increase\(inference_worker_exits_total\[15m\]\)/, /> 0\s*$/]],
    ['GenerationTimeToFirstTokenP99High', '10m', [/histogram_quantile\(0\.99, .*generation_time_to_first_token_seconds_bucket/, /> 2\s*$/]],
  ];
  for (const [name, duration, patterns] of expectations) {
    it(`has ${name} (for ${duration})`, () => {
      const rule = byName.get(name);
      assert.ok(rule, `no alert ${name}`);
      assert.equal(rule.for, duration);
      for (const pattern of patterns) assert.match(rule.expr, pattern);
    });
  }

  it('says that the latency threshold is per deployment', () => {
    assert.match(byName.get('InferenceLatencyP99High')!.annotations.description, /per deployment/);
  });

  it('alerts on an open circuit breaker', () => {
    const rule = byName.get('InferenceCircuitOpen');
    assert.ok(rule, 'InferenceCircuitOpen');
    assert.ok(metricNames(rule.expr as string).includes('inference_circuit_breaker_state'));
  });
});

// ---- Prometheus' configuration, Grafana's provisioning and the compose services ----

describe('docker/prometheus/prometheus.yml, Grafana provisioning and the observability services of docker/compose.yaml', () => {
  const prometheus = yaml('docker/prometheus/prometheus.yml');
  const compose = yaml('docker/compose.yaml');
  const services = compose.services as Record<string, Yaml>;
  const datasources = yaml('docker/grafana/provisioning/datasources/prometheus.yaml');
  const dashboards = yaml('docker/grafana/provisioning/dashboards/onnx-serving.yaml');

  /** A service's bind mounts ("./host:/container[:ro]") as host path (from docker/), container path and mode. */
  const mounts = (service: string): { host: string; container: string; mode?: string }[] =>
    ((services[service]?.volumes ?? []) as string[])
      .filter((v) => v.startsWith('.'))
      .map((v) => {
        const [host, container, mode] = v.split(':');
        return { host: path.join('docker', host!), container: container!, mode };
      });
  const mountOf = (service: string, container: string) => mounts(service).find((m) => m.container === container);

  it('scrapes job onnx-serving at server:8002, the metrics port of the compose service "server"', () => {
    const jobs = prometheus.scrape_configs as Yaml[];
    const job = jobs.find((j) => j.job_name === 'onnx-serving');
    assert.ok(job, 'no scrape job onnx-serving');
    assert.equal(job.metrics_path ?? '/metrics', '/metrics');
    const targets = (job.static_configs as Yaml[]).flatMap((c) => c.targets as string[]);
    assert.deepEqual(targets, ['server:8002']);
    const [host, port] = targets[0]!.split(':');
    assert.ok(services[host!], `no compose service ${host}`);
    assert.equal(services[host!]!.environment.METRICS_PORT, port);
  });

  it('loads alerts.yaml, mounted read-only next to prometheus.yml where --config.file points', () => {
    assert.deepEqual(prometheus.rule_files, ['alerts.yaml']);
    const configFile = (services.prometheus!.command as string[]).find((a) => a.startsWith('--config.file='))!.split('=')[1]!;
    assert.equal(mountOf('prometheus', configFile)?.host, 'docker/prometheus/prometheus.yml');
    const rulesMount = mountOf('prometheus', path.posix.join(path.posix.dirname(configFile), 'alerts.yaml'));
    assert.equal(rulesMount?.host, 'docker/prometheus/alerts.yaml');
  });

  it('provisions the Prometheus service as the default data source and the dashboard from its mount', () => {
    const [source] = datasources.datasources as Yaml[];
    assert.equal(source!.type, 'prometheus');
    assert.equal(source!.isDefault, true);
    const url = new URL(source!.url as string);
    assert.ok(services[url.hostname], `the data source points at ${url.hostname}, not a compose service`);
    assert.ok((services[url.hostname]!.ports as string[]).some((p) => p.endsWith(`:${url.port}`)), `${url.hostname} does not publish ${url.port}`);

    const [provider] = dashboards.providers as Yaml[];
    assert.equal(provider!.type, 'file');
    const dashboardMount = mounts('grafana').find((m) => m.host === 'docker/grafana/onnx-serving-dashboard.json');
    assert.ok(dashboardMount, 'grafana does not mount the dashboard');
    assert.equal(path.posix.dirname(dashboardMount.container), provider!.options.path, 'the dashboard is not mounted where the provider reads');
    assert.equal(mountOf('grafana', '/etc/grafana/provisioning')?.host, 'docker/grafana/provisioning');
  });

  it('adds prometheus and grafana as optional services on pinned images with read-only mounts that exist', () => {
    for (const [name, image] of [['prometheus', /^prom\/prometheus:v\d+\.\d+\.\d+$/], ['grafana', /^grafana\/grafana:\d+\.\d+\.\d+$/]] as const) {
      const service = services[name];
      assert.ok(service, `no service ${name}`);
      assert.match(service.image, image);
      assert.deepEqual(service.profiles, ['observability'], `${name} should only start with --profile observability`);
      assert.ok(mounts(name).length > 0);
      for (const mount of mounts(name)) {
        assert.equal(mount.mode, 'ro', `${name}: ${mount.host} is not mounted read-only`);
        assert.ok(existsSync(path.join(root, mount.host)), `${name}: ${mount.host} does not exist`);
      }
      for (const volume of ((service.volumes ?? []) as string[]).filter((v) => !v.startsWith('.'))) {
        assert.ok(volume.split(':')[0]! in (compose.volumes as Yaml), `${name}: volume ${volume} is not declared`);
      }
    }
    // The server stays the default service: no profile, so a plain `up` starts it alone (the
    // replicas and their Redis have a profile of their own, checked in docker-files.test.ts).
    assert.equal(services.server!.profiles, undefined);
    assert.deepEqual(Object.keys(services).filter((name) => services[name]!.profiles?.[0] !== 'replicas'), ['server', 'prometheus', 'grafana']);
  });
});
