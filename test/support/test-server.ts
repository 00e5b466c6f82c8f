import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/app.js';
import type { AppOverrides } from '../../src/app.module.js';
import { loadAppConfig } from '../../src/infra/config/app-config.js';
import { CLASSIFIER_PARAMETERS, classifierModel } from '../../scripts/build-models.js';
import { freePort } from './free-port.js';

/** A model to place in a test repository: its ONNX bytes (or a file to copy) and an optional config.json. */
export interface TestModel {
  readonly name: string;
  readonly version?: number;
  readonly onnx: Uint8Array | { readonly copyFrom: string };
  readonly config?: object | string;
  /** Files of the model's `warmup/` folder (Triton's warm-up data), by name. */
  readonly warmup?: Readonly<Record<string, Uint8Array>>;
}

export async function makeRepository(models: readonly TestModel[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'onnx-serving-repo-'));
  for (const model of models) {
    const dir = join(root, model.name, String(model.version ?? 1));
    await mkdir(dir, { recursive: true });
    const target = join(dir, 'model.onnx');
    if (model.onnx instanceof Uint8Array) await writeFile(target, model.onnx);
    else await cp(model.onnx.copyFrom, target);
    if (model.config !== undefined) {
      const text = typeof model.config === 'string' ? model.config : JSON.stringify(model.config);
      await writeFile(join(root, model.name, 'config.json'), text);
    }
    for (const [file, bytes] of Object.entries(model.warmup ?? {})) {
      await mkdir(join(root, model.name, 'warmup'), { recursive: true });
      await writeFile(join(root, model.name, 'warmup', file), bytes);
    }
  }
  return root;
}

export interface TestServer {
  readonly url: string;
  readonly server: RunningServer;
  close(): Promise<void>;
}

/** Boots the real app on an ephemeral port over a repository, and waits until its models have loaded. */
/**
 * The test servers' INGRESS_THREADS: none unless the run says (`INGRESS_THREADS=4 node --test ...`
 * runs a suite with the serving ports on four ingress threads), whatever the machine's cores.
 */
export function testIngressThreads(): string {
  return process.env.INGRESS_THREADS ?? '0';
}

export async function startTestServer(repository: string, env: Record<string, string> = {}, overrides: AppOverrides = {}): Promise<TestServer> {
  const stateDir = env.STATE_DIR ?? (await mkdtemp(join(tmpdir(), 'onnx-serving-state-')));
  const config = loadAppConfig({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: '0', GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'silent', STATE_DIR: stateDir, INGRESS_THREADS: testIngressThreads(), ...env });
  const server = await startServer(config, overrides);
  await server.modelsLoaded;
  return {
    url: server.httpUrl,
    server,
    close: async () => {
      await server.app.close();
      await rm(repository, { recursive: true, force: true });
      if (env.STATE_DIR === undefined) await rm(stateDir, { recursive: true, force: true });
    },
  };
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

export async function getJson(url: string): Promise<{ status: number; body: any }> {
  const response = await fetch(url);
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Like {@link postJson}, with request headers and a signal to abort the request with. */
export async function postJsonWith(
  url: string,
  body: unknown,
  init: { readonly headers?: Record<string, string>; readonly signal?: AbortSignal },
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: JSON.stringify(body),
    signal: init.signal,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

/** The statistics of one model version, from Triton's `GET /v2/models/{m}/versions/{v}/stats`. */
export async function modelStatistics(url: string, model: string, version = 1): Promise<any> {
  const { status, body } = await getJson(`${url}/v2/models/${model}/versions/${version}/stats`);
  if (status !== 200) throw new Error(`stats of ${model} answered ${status}: ${JSON.stringify(body)}`);
  return body.model_stats[0];
}

/**
 * Boots the app like {@link startTestServer}, but `close()` only stops it: the repository and the
 * STATE_DIR stay, so that another server can start over them (a restart). The caller removes them.
 */
export async function startServerOver(repository: string, env: Record<string, string> & { STATE_DIR: string }): Promise<TestServer> {
  const config = loadAppConfig({ MODEL_REPOSITORY: repository, HOST: '127.0.0.1', HTTP_PORT: '0', GRPC_PORT: String(await freePort()), METRICS_PORT: '0', LOG_LEVEL: 'silent', ...env });
  const server = await startServer(config);
  await server.modelsLoaded;
  return { url: server.httpUrl, server, close: () => server.app.close() };
}

/**
 * A request with any method and headers; a string body is sent as it is (bad JSON included), any
 * other body as JSON, and no body with no content type. The answer is parsed when it is JSON.
 */
export async function requestJson(
  method: string,
  url: string,
  init: { readonly headers?: Record<string, string>; readonly body?: unknown } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const hasBody = init.body !== undefined;
  const response = await fetch(url, {
    method,
    headers: { ...(hasBody && { 'content-type': 'application/json' }), ...init.headers },
    body: hasBody ? (typeof init.body === 'string' ? init.body : JSON.stringify(init.body)) : undefined,
  });
  const text = await response.text();
  let body: unknown = text || undefined;
  if ((response.headers.get('content-type') ?? '').includes('json') && text) body = JSON.parse(text);
  return { status: response.status, body, headers: response.headers };
}

/** The header the admin API wants: `Authorization: Bearer <token>`. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/**
 * The demo classifier with its bias changed so that it answers `label` for any ordinary input: versions
 * built with different labels tell, in their answers, which of them computed it. (The bias is patched
 * in the encoded model: same length, so the protobuf stays valid.)
 */
export function classifierAnswering(label: 0 | 1 | 2): Uint8Array {
  const bytes = Buffer.from(classifierModel());
  const original = Buffer.from(Float32Array.from(CLASSIFIER_PARAMETERS.bias).buffer);
  const at = bytes.indexOf(original);
  if (at < 0 || bytes.lastIndexOf(original) !== at) throw new Error('the classifier bias is not found exactly once in the model');
  const bias = Float32Array.from([0, 0, 0], (_, i) => (i === label ? 100 : 0));
  Buffer.from(bias.buffer).copy(bytes, at);
  return new Uint8Array(bytes);
}
