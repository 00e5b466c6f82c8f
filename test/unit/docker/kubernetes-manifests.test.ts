// The Kubernetes manifests (docker/kubernetes, applied with kustomize) and the KServe runtime
// (docker/kserve), parsed with the `yaml` package and checked against their schemas by maintained
// schema libraries: kubernetes-models (the Kubernetes API's OpenAPI schemas) and
// @kubernetes-models/prometheus-operator (ServiceMonitor); KServe publishes no such package, so its
// CRDs' openAPIV3Schema, cut down to what the manifests use (test/support/kserve/*.schema.json, which
// say where they come from), is checked with ajv. Then what no schema can see: the objects against
// each other and against the server (its configuration, ports, shutdown).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import * as prometheusOperator from '@kubernetes-models/prometheus-operator';
import * as kubernetesModels from 'kubernetes-models';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadAppConfig, type AppConfig } from '../../../src/infra/config/app-config.js';
import { REPO_ROOT, readRepoFile } from '../../support/repo-files.js';

const read = readRepoFile;

// Kubernetes objects are read loosely typed (the schemas checked them); `any` keeps the walks short.
type K8s = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; namespace?: string }; spec?: any; data?: Record<string, string> };

// ---- The schemas ----

interface Validating {
  validate(): void;
}
type ModelClass = { apiVersion: string; kind: string; new (data: object): Validating };

/** Every model class of the two packages, by "apiVersion kind". */
const MODEL_CLASSES = new Map<string, ModelClass>();
function collectModels(namespace: object, depth = 0): void {
  for (const value of Object.values(namespace)) {
    if (typeof value === 'function' && typeof value.apiVersion === 'string' && typeof value.kind === 'string') MODEL_CLASSES.set(`${value.apiVersion} ${value.kind}`, value as ModelClass);
    else if (value && typeof value === 'object' && depth < 3) collectModels(value, depth + 1);
  }
}
collectModels(kubernetesModels);
collectModels(prometheusOperator);

// CRDs carry x-kubernetes-* keywords and formats (int32, quantity) that are not JSON Schema's: not strict.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const CRD_SCHEMAS = new Map(
  ['serving-runtime', 'inference-service'].map((name) => {
    const schema = JSON.parse(readFileSync(path.join(REPO_ROOT, 'test/support/kserve', `${name}.schema.json`), 'utf8')) as {
      'x-kubernetes-group-version-kind': { group: string; version: string; kind: string }[];
    };
    const [gvk] = schema['x-kubernetes-group-version-kind'];
    return [`${gvk!.group}/${gvk!.version} ${gvk!.kind}`, ajv.compile(schema)];
  }),
);

/** Checks one object against its schema; throws naming what is wrong. */
function validate(object: K8s): void {
  const key = `${object.apiVersion} ${object.kind}`;
  const crd = CRD_SCHEMAS.get(key);
  if (crd) {
    if (!crd(object)) throw new Error(ajv.errorsText(crd.errors, { dataVar: key }));
    return;
  }
  const model = MODEL_CLASSES.get(key);
  if (!model) throw new Error(`no schema for ${key}`);
  new model(object).validate();
}

// ---- The files ----

function documentsOf(file: string): K8s[] {
  return parseAllDocuments(read(file)).map((document, i) => {
    assert.deepEqual(document.errors, [], `${file} document ${i}`);
    return document.toJS() as K8s;
  });
}

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(path.join(REPO_ROOT, dir))
    .flatMap((name) => {
      const file = `${dir}/${name}`;
      return statSync(path.join(REPO_ROOT, file)).isDirectory() ? yamlFilesUnder(file) : /\.ya?ml$/.test(name) ? [file] : [];
    })
    .sort();
}

const kustomization = parseYaml(read('docker/kubernetes/kustomization.yaml')) as {
  resources: string[];
  secretGenerator: { name: string; files: string[] }[];
  generatorOptions?: { disableNameSuffixHash?: boolean };
};
const manifestFiles = [...yamlFilesUnder('docker/kubernetes').filter((f) => !f.endsWith('/kustomization.yaml')), ...yamlFilesUnder('docker/kserve')];
const objects = manifestFiles.flatMap((file) => documentsOf(file).map((object) => ({ file, object })));
/** What `kubectl apply -k docker/kubernetes` creates (besides the generated Secret). */
const applied = kustomization.resources.flatMap((resource) => documentsOf(`docker/kubernetes/${resource}`));

function one(kind: string, name: string, among: readonly K8s[] = objects.map((o) => o.object)): K8s {
  const found = among.filter((o) => o.kind === kind && o.metadata.name === name);
  assert.equal(found.length, 1, `${kind}/${name}: ${found.length} found`);
  return found[0]!;
}

const deployment = one('Deployment', 'onnx-serving', applied);
const podSpec = deployment.spec.template.spec;
const podLabels: Record<string, string> = deployment.spec.template.metadata.labels;
const server = podSpec.containers.find((c: { name: string }) => c.name === 'server');
const runtime = one('ServingRuntime', 'onnx-serving');
const runtimeContainer = runtime.spec.containers[0];

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } };
/** The server's configuration as a container's literal environment makes it (what the server would refuse, this refuses). */
/** The server's configuration from a container's env; a variable from a Secret gets a stand-in value, as Kubernetes would give the Secret's. */
function configOf(container: { env?: EnvVar[] }): AppConfig {
  const env = container.env ?? [];
  const literal = Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  const fromSecrets = Object.fromEntries(env.filter((e) => e.valueFrom?.secretKeyRef !== undefined).map((e) => [e.name, `value-of-${e.valueFrom!.secretKeyRef!.key}-from-its-secret`]));
  return loadAppConfig({ ...literal, ...fromSecrets });
}
const envOf = (container: { env?: EnvVar[] }, name: string): EnvVar | undefined => container.env?.find((e) => e.name === name);

const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels[key] === value);

const containerPort = (container: { ports: { name: string; containerPort: number }[] }, name: string): number | undefined => container.ports.find((p) => p.name === name)?.containerPort;

// ---- The tests ----

describe('docker/kubernetes and docker/kserve: the schemas', () => {
  it('finds the objects of every kind the deployment needs', () => {
    const kinds = new Set(objects.map(({ object }) => object.kind));
    for (const kind of ['Deployment', 'Service', 'PersistentVolumeClaim', 'StatefulSet', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'NetworkPolicy', 'ServiceMonitor', 'ConfigMap', 'ServingRuntime', 'InferenceService']) {
      assert.ok(kinds.has(kind), `no ${kind}`);
    }
  });

  it('validates every object against its Kubernetes, prometheus-operator or KServe schema', () => {
    const problems = objects.flatMap(({ file, object }) => {
      try {
        validate(object);
        return [];
      } catch (error) {
        return [`${file}: ${object.kind}/${object.metadata?.name}: ${(error as Error).message}`];
      }
    });
    assert.deepEqual(problems, []);
  });

  it('refuses a wrong type, a missing required field and, in KServe objects, a misspelt field (the check is real)', () => {
    const copy = <T>(value: T): T => structuredClone(value);
    const badPort = copy(deployment);
    badPort.spec.template.spec.containers[0].ports[0].containerPort = '8000';
    assert.throws(() => validate(badPort), /containerPort must be integer/);
    const noContainers = copy(deployment);
    delete noContainers.spec.template.spec.containers;
    assert.throws(() => validate(noContainers), /containers/);
    const misspelt = copy(runtime);
    misspelt.spec.supportedModelFormat = misspelt.spec.supportedModelFormats;
    delete misspelt.spec.supportedModelFormats;
    assert.throws(() => validate(misspelt), /must NOT have additional properties/);
    const badPriority = copy(runtime);
    badPriority.spec.supportedModelFormats[0].priority = 0;
    assert.throws(() => validate(badPriority), /priority must be >= 1/);
    assert.throws(() => validate({ apiVersion: 'example.com/v1', kind: 'Unknown', metadata: { name: 'x' } }), /no schema for example.com\/v1 Unknown/);
  });

  it('lists in kustomization.yaml only files that exist, and every file of docker/kubernetes but the adapter rule (another namespace)', () => {
    const listed = kustomization.resources.map((r) => `docker/kubernetes/${r}`).sort();
    const files = manifestFiles.filter((f) => f.startsWith('docker/kubernetes/') && !f.endsWith('prometheus-adapter-rules.yaml')).sort();
    assert.deepEqual(listed, files);
  });
});

describe('docker/kubernetes: the objects against each other and against the server', () => {
  it('reads ADMIN_TOKEN from the key of the Secret kustomize generates, from a file kept out of git', () => {
    const ref = envOf(server, 'ADMIN_TOKEN')?.valueFrom?.secretKeyRef;
    assert.ok(ref, 'ADMIN_TOKEN comes from a Secret');
    assert.notEqual(ref.optional, true, 'required: without it each replica would generate its own token');
    const generator = kustomization.secretGenerator.find((g) => g.name === ref.name);
    assert.ok(generator, `kustomization.yaml generates no Secret ${ref.name}`);
    assert.equal(kustomization.generatorOptions?.disableNameSuffixHash, true, 'the Secret keeps the name the Deployment reads');
    const source = generator.files.map((f) => f.split('=')).find(([key]) => key === ref.key);
    assert.ok(source, `the Secret has no key ${ref.key} (${generator.files.join(', ')})`);
    const ignored = read('docker/kubernetes/.gitignore').split('\n').map((l) => l.trim());
    assert.ok(ignored.includes(source[1]!), `${source[1]} (the token) is not kept out of git`);
  });

  it("gives the containers the ports the server listens on, and probes the server's health endpoints", () => {
    const config = configOf(server);
    assert.ok(config.ADMIN_PORT !== undefined, 'the admin API on a port of its own (ADMIN_PORT), for the Services and the NetworkPolicy to keep apart');
    assert.deepEqual(
      [containerPort(server, 'http'), containerPort(server, 'grpc'), containerPort(server, 'metrics'), containerPort(server, 'admin')],
      [config.HTTP_PORT, config.GRPC_PORT, config.METRICS_PORT, config.ADMIN_PORT],
    );
    const defaults = loadAppConfig({});
    assert.deepEqual([config.HTTP_PORT, config.GRPC_PORT, config.METRICS_PORT], [defaults.HTTP_PORT, defaults.GRPC_PORT, defaults.METRICS_PORT], "the server's defaults");
    assert.equal(server.livenessProbe.httpGet.path, '/v2/health/live');
    assert.equal(server.readinessProbe.httpGet.path, '/v2/health/ready');
    assert.equal(server.startupProbe.httpGet.path, '/v2/health/ready');
    for (const probe of [server.livenessProbe, server.readinessProbe, server.startupProbe]) assert.equal(probe.httpGet.port, 'http');
  });

  it('keeps the root filesystem read-only and mounts writable volumes where the server writes: /tmp, STATE_DIR and the shared repository', () => {
    assert.equal(server.securityContext.readOnlyRootFilesystem, true);
    assert.equal(podSpec.securityContext.runAsNonRoot, true);
    const config = configOf(server);
    const mounts = new Map<string, { name: string; readOnly?: boolean }>(server.volumeMounts.map((m: { mountPath: string }) => [m.mountPath, m]));
    for (const where of ['/tmp', config.STATE_DIR, config.MODEL_REPOSITORY]) {
      assert.ok(mounts.has(where), `nothing mounted at ${where}`);
      assert.notEqual(mounts.get(where)!.readOnly, true, `${where} is mounted read-only`);
    }
    const repositoryVolume = podSpec.volumes.find((v: { name: string }) => v.name === mounts.get(config.MODEL_REPOSITORY)!.name);
    const claim = one('PersistentVolumeClaim', repositoryVolume.persistentVolumeClaim?.claimName, applied);
    assert.deepEqual(claim.spec.accessModes, ['ReadWriteMany'], 'every replica mounts the repository, on any node');
    const seed = podSpec.initContainers.find((c: { name: string }) => c.name === 'seed-models');
    assert.equal(envOf(seed, 'MODEL_REPOSITORY')?.value, config.MODEL_REPOSITORY, 'the seeding container fills the repository the server reads');
  });

  it("gives the pod more time than the server's own shutdown (SHUTDOWN_GRACE_MS), and no preStop hook that would delay its drain", () => {
    const config = configOf(server);
    assert.ok(config.SHUTDOWN_DRAIN_DELAY_MS < config.SHUTDOWN_GRACE_MS);
    const preStopSeconds = server.lifecycle?.preStop?.sleep?.seconds ?? 0;
    assert.equal(server.lifecycle?.preStop?.exec, undefined, 'an exec hook needs a shell the image may not have');
    assert.ok(podSpec.terminationGracePeriodSeconds * 1000 > preStopSeconds * 1000 + config.SHUTDOWN_GRACE_MS, `${podSpec.terminationGracePeriodSeconds} s is not above ${preStopSeconds} s + SHUTDOWN_GRACE_MS`);
  });

  it('selects the Deployment\'s pods from its Services, PodDisruptionBudget and NetworkPolicy, and keeps the metrics and admin ports off the public Service', () => {
    assert.ok(selects(deployment.spec.selector.matchLabels, podLabels), "the Deployment's selector matches its own pods");
    const publicService = one('Service', 'onnx-serving', applied);
    const metricsService = one('Service', 'onnx-serving-metrics', applied);
    const adminService = one('Service', 'onnx-serving-admin', applied);
    for (const service of [publicService, metricsService, adminService]) {
      assert.ok(selects(service.spec.selector, podLabels), `Service ${service.metadata.name} selects no pod of the Deployment`);
      for (const port of service.spec.ports) assert.ok(containerPort(server, port.targetPort) !== undefined, `Service ${service.metadata.name}: targetPort ${port.targetPort} is no container port`);
    }
    assert.deepEqual(publicService.spec.ports.map((p: { targetPort: string }) => p.targetPort), ['http', 'grpc'], 'inference only');
    assert.deepEqual(metricsService.spec.ports.map((p: { targetPort: string }) => p.targetPort), ['metrics']);
    // The public Service reaches neither the admin nor the metrics port, by name or by number.
    const config = configOf(server);
    for (const port of publicService.spec.ports as { port: number; targetPort: string | number }[]) {
      const target = typeof port.targetPort === 'number' ? port.targetPort : containerPort(server, port.targetPort);
      assert.ok(target !== config.ADMIN_PORT && target !== config.METRICS_PORT, `the public Service's port ${port.port} reaches ${target}`);
    }
    // The admin Service: the admin port only, inside the cluster.
    assert.deepEqual(adminService.spec.ports.map((p: { targetPort: string }) => containerPort(server, p.targetPort)), [config.ADMIN_PORT]);
    assert.equal(adminService.spec.type ?? 'ClusterIP', 'ClusterIP', 'not a NodePort or LoadBalancer');
    assert.equal(adminService.spec.externalIPs, undefined);
    const pdb = one('PodDisruptionBudget', 'onnx-serving', applied);
    assert.ok(selects(pdb.spec.selector.matchLabels, podLabels));
    const policy = one('NetworkPolicy', 'onnx-serving', applied);
    assert.ok(selects(policy.spec.podSelector.matchLabels, podLabels));
    const rules: { from?: object[]; ports: { port: string }[] }[] = policy.spec.ingress;
    const open = rules.filter((r) => r.from === undefined).flatMap((r) => r.ports.map((p) => p.port));
    assert.deepEqual(open.sort(), ['grpc', 'http'], 'from anywhere: inference only');
    for (const [port, from] of [['metrics', 'where Prometheus runs'], ['admin', 'the admin clients']]) {
      const rule = rules.find((r) => r.ports.some((p) => p.port === port));
      assert.ok(rule?.from && rule.from.length > 0, `the ${port} port only from ${from}`);
      assert.ok(rule.ports.every((p) => p.port === port), `the ${port} port's rule opens nothing else`);
    }
  });

  it('scrapes the metrics Service with the ServiceMonitor', () => {
    const monitor = one('ServiceMonitor', 'onnx-serving', applied);
    const metricsService = one('Service', 'onnx-serving-metrics', applied);
    assert.ok(selects(monitor.spec.selector.matchLabels, metricsService.metadata.labels!));
    for (const endpoint of monitor.spec.endpoints) {
      assert.ok(metricsService.spec.ports.some((p: { name: string }) => p.name === endpoint.port), `no port ${endpoint.port} on the metrics Service`);
      assert.equal(endpoint.path ?? '/metrics', '/metrics');
    }
  });

  it("scales the Deployment on CPU and on a pod metric that the prometheus-adapter rule serves; keeps one replica through disruptions", () => {
    const hpa = one('HorizontalPodAutoscaler', 'onnx-serving', applied);
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    const podMetric = hpa.spec.metrics.find((m: { type: string }) => m.type === 'Pods')?.pods.metric.name;
    assert.ok(podMetric, 'a Pods metric');
    assert.ok(hpa.spec.metrics.some((m: { type: string; resource?: { name: string } }) => m.type === 'Resource' && m.resource?.name === 'cpu'), 'and CPU');
    const configMap = one('ConfigMap', 'onnx-serving-adapter-rules');
    const rules = (parseYaml(configMap.data!['config.yaml']!) as { rules: { seriesQuery: string; resources: { overrides: Record<string, { resource: string }> }; name: { matches: string; as?: string } }[] }).rules;
    const rule = rules.find((r) => (r.name.as ?? r.name.matches) === podMetric);
    assert.ok(rule, `no adapter rule serves ${podMetric}`);
    assert.equal(rule.resources.overrides.pod?.resource, 'pod', 'the series map to pods');
    assert.equal(rule.resources.overrides.namespace?.resource, 'namespace');
    // That the server exports the rule's series (with samples): test/e2e/metrics-references.e2e.test.ts.
    assert.match(rule.seriesQuery, new RegExp(`^${rule.name.matches.replace(/^\^|\$$/g, '')}\\{`));
    const pdb = one('PodDisruptionBudget', 'onnx-serving', applied);
    assert.ok(hpa.spec.minReplicas > pdb.spec.maxUnavailable, 'a drain leaves a replica serving');
  });

  it("points REDIS_URL at the Redis Service, whose selector and NetworkPolicy let only the server's pods in", () => {
    const url = new URL(envOf(server, 'REDIS_URL')!.value!);
    const service = one('Service', url.hostname, applied);
    const redis = one('StatefulSet', url.hostname, applied);
    assert.ok(selects(service.spec.selector, redis.spec.template.metadata.labels));
    const port = service.spec.ports.find((p: { port: number }) => p.port === Number(url.port || 6379));
    assert.ok(port, `the Service has no port ${url.port}`);
    assert.ok(redis.spec.template.spec.containers[0].ports.some((p: { name: string }) => p.name === port.targetPort));
    const policy = one('NetworkPolicy', url.hostname, applied);
    assert.ok(selects(policy.spec.podSelector.matchLabels, redis.spec.template.metadata.labels));
    const from = policy.spec.ingress.flatMap((r: { from: { podSelector: { matchLabels: Record<string, string> } }[] }) => r.from);
    assert.ok(from.length > 0 && from.every((f: { podSelector?: { matchLabels: Record<string, string> } }) => f.podSelector && selects(f.podSelector.matchLabels, podLabels)));
  });
});

describe('docker/kserve: the runtime and its example', () => {
  it('serves ONNX over the V2 protocol, HTTP and gRPC, on the ports the server listens on', () => {
    assert.ok(runtime.spec.supportedModelFormats.some((f: { name: string }) => f.name === 'onnx'));
    assert.deepEqual(runtime.spec.protocolVersions, ['v2', 'grpc-v2']);
    const config = configOf(runtimeContainer);
    assert.equal(config.MODEL_REPOSITORY, '/mnt/models', "where KServe's storage initializer puts the model");
    const ports: { name: string; containerPort: number }[] = runtimeContainer.ports;
    assert.equal(ports[0]!.containerPort, config.HTTP_PORT, 'the first port is the HTTP one (KServe routes it)');
    const grpc = ports.find((p) => p.containerPort === config.GRPC_PORT);
    assert.ok(grpc && /grpc|h2c/.test(grpc.name), 'the gRPC port is named so that KServe makes it an h2c port');
    assert.equal(runtimeContainer.readinessProbe.httpGet.path, '/v2/health/ready');
    assert.equal(runtimeContainer.readinessProbe.httpGet.port, config.HTTP_PORT);
    assert.equal(runtime.spec.annotations['prometheus.kserve.io/port'], String(config.METRICS_PORT));
    // The admin API is off the ports KServe routes.
    assert.ok(config.ADMIN_PORT !== undefined && !ports.some((p) => p.containerPort === config.ADMIN_PORT), 'ADMIN_PORT set, and not a port KServe routes');
  });

  it('names the runtime, a format it supports and a protocol it speaks in the InferenceService', () => {
    const isvc = one('InferenceService', 'classifier');
    const model = isvc.spec.predictor.model;
    assert.equal(model.runtime, runtime.metadata.name);
    assert.ok(runtime.spec.supportedModelFormats.some((f: { name: string; version?: string }) => f.name === model.modelFormat.name && (f.version ?? model.modelFormat.version) === model.modelFormat.version));
    assert.ok(runtime.spec.protocolVersions.includes(model.protocolVersion));
  });
});
