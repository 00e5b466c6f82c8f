/**
 * The architecture rules `npm test` enforces (dependency-cruiser; `npm run lint:architecture`).
 *
 * Layers: src/domain (pure: ports, aggregates, value objects, events), src/modules (Nest modules:
 * application handlers and services, and their delivery: controllers, guards, middleware,
 * interceptors), src/infra (adapters behind the domain's ports). src/app.ts, src/main.ts and the
 * *.module.ts files are the composition root: they may wire anything.
 *
 * Unused exports are not something dependency-cruiser can see: knip (knip.json) reports them, in
 * the same script. knip rather than ts-prune, which is in maintenance mode and points to knip.
 */

/**
 * Delivery and wiring files in src/modules: what is not one of these is application code. Wire
 * schemas (*.schemas.ts) and mappers (*.mapper.ts) describe and write the wire format: delivery.
 */
const DELIVERY = '\\.(controller|module|guard|middleware|interceptor|schemas|mapper)\\.ts$';

/**
 * The bounded contexts whose application code the layer rules below hold. observability, health and
 * throttling are not application: they are the server's cross-cutting delivery (the Prometheus
 * providers and metrics port, the probes, the quota guard), built on their SDKs by design.
 */
const APPLICATION = '^src/modules/(inference|registry|rollout)/';

/** What any context may use of another, and why. */
const CROSS_CONTEXT_ALLOWED = [
  "another context's Nest module (the wiring of what it exports: its ports' bindings)",
  'guards (cross-cutting delivery: admin authentication)',
  'the throttling context (per-client quotas, a delivery concern each transport applies)',
  'the observability context (the shared kernel of logs, metrics and tracing that every context reports to)',
  "the server's identity constants (name, version, extensions)",
  "a context's wire schemas (*.schemas.ts, its published language: the admin API's one OpenAPI document describes every context's bodies)",
];
const CROSS_CONTEXT_ALLOWED_PATHS = [
  '\\.module\\.ts$',
  '\\.guard\\.ts$',
  '^src/modules/throttling/',
  '^src/modules/observability/',
  '^src/modules/health/server-identity\\.ts$',
  '\\.schemas\\.ts$',
];

module.exports = {
  forbidden: [
    {
      name: 'domain-is-pure',
      comment: 'src/domain is plain TypeScript: no framework, no runtime, no I/O, nothing from modules/ or infra/.',
      severity: 'error',
      from: { path: '^src/domain' },
      to: {
        pathNot: '^src/domain',
      },
    },
    {
      name: 'infra-does-not-use-application',
      comment: 'Adapters implement domain ports; they never reach into the application modules.',
      severity: 'error',
      from: { path: '^src/infra' },
      to: { path: '^src/modules' },
    },
    {
      name: 'application-does-not-use-infra',
      comment:
        'Handlers and services of the inference, registry and rollout contexts reach adapters through domain ports. ' +
        'One exception: AppConfig, the validated environment (a read-only record of settings, which every context reads).',
      severity: 'error',
      from: { path: APPLICATION, pathNot: DELIVERY },
      to: { path: '^src/infra/', pathNot: '^src/infra/config/app-config\\.ts$' },
    },
    {
      name: 'application-uses-no-vendor-sdk',
      comment:
        'Telemetry, metrics, logging, runtime and transport SDKs stay in adapters (OpenTelemetry: behind the RequestTracer port). ' +
        'Libraries that are no vendor of anything (zod, opossum, rxjs) are allowed.',
      severity: 'error',
      from: { path: APPLICATION, pathNot: DELIVERY },
      to: {
        dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'],
        path: 'node_modules/(@opentelemetry/|prom-client/|@willsoto/|pino/|pino-http/|nestjs-pino/|onnxruntime-|@grpc/|fastify/|@fastify/)',
      },
    },
    {
      name: 'contexts-talk-through-ports-or-events',
      comment:
        'A bounded context uses another through a port or an event of the domain (src/domain), never its classes. ' +
        'Allowed across contexts besides: ' + CROSS_CONTEXT_ALLOWED.join('; ') + '.',
      severity: 'error',
      from: { path: '^src/modules/([^/]+)/' },
      to: { path: '^src/modules/', pathNot: ['^src/modules/$1/', ...CROSS_CONTEXT_ALLOWED_PATHS] },
    },
    {
      name: 'no-orphans',
      comment: 'A file nothing imports is dead code (entry points and declaration files aside).',
      severity: 'error',
      from: {
        orphan: true,
        pathNot: [
          '\\.d\\.ts$',
          '^src/main\\.ts$',
          '^src/infra/onnx/onnx-session\\.worker\\.ts$',
        ],
      },
      to: {},
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
