// Static checks of the deployment files under docker/: no Docker engine runs in CI, so the
// Dockerfile is read as text and the compose file parsed, and both are checked against the project
// (package.json scripts, tsconfig outDir, health endpoints, the server's configuration). The
// Kubernetes and KServe manifests: kubernetes-manifests.test.ts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { loadAppConfig } from '../../../src/infra/config/app-config.js';
import { REPO_ROOT, readRepoFile } from '../../support/repo-files.js';

const root = REPO_ROOT;
const read = readRepoFile;

const LIVE = '/v2/health/live';
const READY = '/v2/health/ready';

// ---- A minimal Dockerfile reader: instructions with continuations joined, comments dropped ----

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  /** Index of the FROM stage the instruction belongs to (-1 before the first FROM). */
  readonly stage: number;
}

function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    // Comment lines are dropped, also inside a continuation; parser directives are comments too.
    if (line.startsWith('#')) continue;
    if (line === '' && pending === '') continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const match = /^(\S+)\s*(.*)$/s.exec(full);
    assert.ok(match, `unreadable Dockerfile line: ${full}`);
    const keyword = match[1]!.toUpperCase();
    if (keyword === 'FROM') stage += 1;
    instructions.push({ keyword, args: match[2]!.trim(), stage });
  }
  return instructions;
}

/** The words of an instruction's arguments: the JSON (exec) form if it is one, else split on blanks. */
function words(args: string): string[] {
  if (args.startsWith('[')) {
    const parsed: unknown = JSON.parse(args);
    assert.ok(Array.isArray(parsed) && parsed.every((w) => typeof w === 'string'), `bad exec form: ${args}`);
    return parsed as string[];
  }
  return args.split(/\s+/).filter((w) => w !== '');
}

/** COPY/ADD arguments split into --flags, sources and destination. */
function copyParts(args: string): { flags: string[]; sources: string[]; dest: string } {
  const all = words(args);
  const flags = all.filter((w) => w.startsWith('--'));
  const paths = all.filter((w) => !w.startsWith('--'));
  assert.ok(paths.length >= 2, `COPY needs a source and a destination: ${args}`);
  return { flags, sources: paths.slice(0, -1), dest: paths[paths.length - 1]! };
}

/** compilerOptions.outDir of a tsconfig file, following `extends` (tsconfig files here are plain JSON). */
function outDirOf(tsconfigFile: string): string {
  const config = JSON.parse(read(tsconfigFile)) as { extends?: string; compilerOptions?: { outDir?: string } };
  const outDir = config.compilerOptions?.outDir;
  if (outDir !== undefined) return outDir;
  assert.ok(config.extends, `${tsconfigFile} sets no outDir`);
  return outDirOf(path.join(path.dirname(tsconfigFile), config.extends));
}

/** Normalised relative path: "./dist/" -> "dist". */
const rel = (p: string): string => path.posix.normalize(p).replace(/^\.\//, '').replace(/\/$/, '');

const HEALTH_PATH = /\/v2\/health\/[a-z]+/g;

// ---- The files ----

const dockerfile = parseDockerfile(read('docker/Dockerfile'));
const finalStage = Math.max(...dockerfile.map((i) => i.stage));
const inFinal = dockerfile.filter((i) => i.stage === finalStage);
const packageJson = JSON.parse(read('package.json')) as { scripts?: Record<string, string> };

describe('docker/Dockerfile', () => {
  it('is a multi-stage build', () => {
    const froms = dockerfile.filter((i) => i.keyword === 'FROM');
    assert.ok(froms.length >= 2, `expected at least 2 FROM stages, found ${froms.length}`);
    // onnxruntime-node's native binding needs glibc: no Alpine (musl) base.
    for (const from of froms) assert.doesNotMatch(from.args, /alpine/i, `FROM ${from.args}`);
    assert.equal(dockerfile[0]?.keyword, 'FROM', 'the first instruction must be FROM');
  });

  it('installs with package.json (its allowScripts deny onnxruntime-node\'s GPU download) copied before npm ci', () => {
    const npmCi = dockerfile.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
    assert.notEqual(npmCi, -1, 'no RUN npm ci');
    const manifest = dockerfile.findIndex(
      (i, index) =>
        index < npmCi &&
        i.stage === dockerfile[npmCi]!.stage &&
        i.keyword === 'COPY' &&
        copyParts(i.args).sources.some((s) => rel(s) === 'package.json'),
    );
    assert.notEqual(manifest, -1, 'package.json is not copied before `npm ci` in the same stage');
    const allowScripts = (JSON.parse(read('package.json')) as { allowScripts?: Record<string, boolean> }).allowScripts ?? {};
    assert.equal(allowScripts['onnxruntime-node'], false, 'onnxruntime-node\'s install script (the CUDA download) must be denied');
  });

  it('runs on the Node.js major that package.json pins', () => {
    const manifest = JSON.parse(read('package.json')) as { engines: { node: string }; devDependencies: Record<string, string> };
    const pinned = Number(manifest.devDependencies.node!.split('.')[0]);
    assert.match(manifest.engines.node, new RegExp(`^>=${pinned}\\.`), 'engines.node must start at the pinned major');
    for (const from of dockerfile.filter((i) => i.keyword === 'FROM')) {
      assert.match(from.args, new RegExp(`^node:${pinned}-`), `FROM ${from.args}: the image must carry Node ${pinned}`);
    }
  });

  it('keeps npm from printing false engine warnings when a system Node older than the pin runs it', () => {
    const settings = new Map(
      read('.npmrc')
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('#'))
        .map((line) => line.split('=').map((part) => part.trim()) as [string, string]),
    );
    assert.equal(settings.get('loglevel'), 'error', 'npm judges engines against the Node running npm, not the pinned one');
    assert.ok(!settings.has('onnxruntime-node-install'), 'npm 11 refuses unknown config keys');
  });

  it('copies from the build context only paths that exist', () => {
    for (const i of dockerfile.filter((x) => x.keyword === 'COPY' || x.keyword === 'ADD')) {
      const { flags, sources } = copyParts(i.args);
      if (flags.some((f) => f.startsWith('--from'))) continue;
      for (const source of sources) {
        if (/[*?[]/.test(source)) continue;
        assert.ok(existsSync(path.join(root, source)), `${i.keyword} ${i.args}: ${source} does not exist`);
      }
    }
  });

  it('copies into the build every directory tsconfig.json compiles', () => {
    const include = (JSON.parse(read('tsconfig.json')) as { include?: string[] }).include ?? [];
    const copied = dockerfile
      .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from'))
      .flatMap((i) => copyParts(i.args).sources.map(rel));
    for (const entry of include) assert.ok(copied.includes(rel(entry)), `tsconfig.json includes ${entry}, the Dockerfile does not COPY it`);
  });

  it('runs only npm scripts that package.json defines', () => {
    const scripts = packageJson.scripts ?? {};
    const used = dockerfile
      .filter((i) => i.keyword === 'RUN')
      .flatMap((i) => [...i.args.matchAll(/\bnpm\s+run(?:-script)?\s+([^\s&;|]+)/g)].map((m) => m[1]!));
    assert.ok(used.length > 0, 'the Dockerfile runs no npm script');
    for (const script of used) assert.ok(script in scripts, `npm run ${script}: no such script in package.json`);
  });

  it('runs the final stage as a non-root user', () => {
    const users = inFinal.filter((i) => i.keyword === 'USER');
    assert.ok(users.length > 0, 'no USER in the final stage');
    const user = users[users.length - 1]!.args.split(':')[0]!;
    assert.ok(user !== 'root' && user !== '0', `USER ${user} is root`);
  });

  it(`has a HEALTHCHECK on ${LIVE} and exposes 8000`, () => {
    const healthcheck = inFinal.find((i) => i.keyword === 'HEALTHCHECK');
    assert.ok(healthcheck, 'no HEALTHCHECK in the final stage');
    assert.ok(healthcheck.args.includes(LIVE), `HEALTHCHECK does not probe ${LIVE}: ${healthcheck.args}`);
    const exposed = inFinal.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => words(i.args)).map((p) => p.split('/')[0]);
    for (const port of ['8000', '8001', '8002']) assert.ok(exposed.includes(port), `port ${port} is not exposed`);
  });

  it("starts the compiled entry point (tsconfig.build.json's outDir + /main.js) and ships it", () => {
    const cmds = inFinal.filter((i) => i.keyword === 'CMD');
    assert.ok(cmds.length > 0, 'no CMD in the final stage');
    const cmd = words(cmds[cmds.length - 1]!.args);
    assert.equal(cmd[0], 'node', `CMD should run node directly (so it gets SIGTERM): ${cmd.join(' ')}`);
    const entry = cmd.slice(1).find((w) => !w.startsWith('-'));
    assert.ok(entry, 'CMD names no entry file');
    const outDir = rel(outDirOf('tsconfig.build.json'));
    assert.equal(rel(entry), `${outDir}/main.js`);

    // The runtime stage must contain that directory and package.json (the server reads it).
    const copiedFromBuild = inFinal
      .filter((i) => i.keyword === 'COPY' && i.args.includes('--from'))
      .map((i) => copyParts(i.args))
      .flatMap(({ sources }) => sources.map((s) => path.posix.basename(rel(s))));
    for (const needed of [outDir, 'package.json', 'node_modules']) {
      assert.ok(copiedFromBuild.includes(needed), `the final stage does not copy ${needed} from the build stage`);
    }
  });
});

describe('docker/Dockerfile.dockerignore', () => {
  it('keeps local build output and dependencies out of the context', () => {
    const patterns = read('docker/Dockerfile.dockerignore')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map(rel);
    for (const p of ['node_modules', 'dist', '.build', 'models', '.git']) assert.ok(patterns.includes(p), `${p} is not ignored`);
  });
});

describe('docker/compose.yaml', () => {
  type Service = {
    build?: { context: string; dockerfile: string };
    image?: string;
    ports?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    healthcheck?: { test: string[] };
    restart?: string;
    stop_grace_period?: string;
    profiles?: string[];
    deploy?: { replicas?: number };
    depends_on?: Record<string, { condition: string }>;
  };
  const compose = parseYaml(read('docker/compose.yaml')) as { services: Record<string, Service>; volumes: Record<string, unknown> };
  const servers = Object.entries(compose.services).filter(([, service]) => service.build !== undefined);

  it('builds docker/Dockerfile with the repository root as context, for every server service', () => {
    assert.deepEqual(servers.map(([name]) => name).sort(), ['replica', 'server']);
    for (const [name, { build }] of servers) {
      assert.equal(path.resolve(root, 'docker', build!.context), root, `${name}: the context should be the repository root`);
      assert.ok(existsSync(path.resolve(root, 'docker', build!.context, build!.dockerfile)), `${name}: ${build!.dockerfile} not found`);
    }
  });

  it('health-checks a V2 health endpoint, restarts, and stops within the shutdown grace', () => {
    for (const [name, service] of servers) {
      const paths = (service.healthcheck?.test.join(' ') ?? '').match(HEALTH_PATH) ?? [];
      assert.ok(paths.length > 0, `${name}: the healthcheck probes no /v2/health/ path`);
      for (const p of paths) assert.ok(p === LIVE || p === READY, `${name}: unknown health path ${p}`);
      assert.equal(service.stop_grace_period, '30s', name);
      assert.equal(service.restart, 'unless-stopped', name);
    }
    assert.deepEqual(compose.services.server!.ports, ['8000:8000', '8001:8001', '8002:8002']);
  });

  it('runs several replicas (profile "replicas") on one Redis, one admin token and one writable repository volume', () => {
    const replica = compose.services.replica!;
    assert.deepEqual(replica.profiles, ['replicas'], 'not started by a plain `up`');
    assert.ok((replica.deploy?.replicas ?? 1) >= 2, 'deploy.replicas');
    const redis = compose.services.redis!;
    assert.deepEqual(redis.profiles, ['replicas']);
    assert.match(redis.image ?? '', /^redis:/);
    assert.equal(replica.depends_on?.redis?.condition, 'service_healthy');
    const env = replica.environment!;
    assert.equal(env.REDIS_URL, 'redis://redis:6379', 'the compose service name and Redis port');
    assert.match(env.ADMIN_TOKEN!, /^\$\{ADMIN_TOKEN[:}]/, 'one token for every replica, from the environment');
    const repository = replica.volumes?.find((v) => v.split(':')[1] === env.MODEL_REPOSITORY);
    assert.ok(repository, `no volume at MODEL_REPOSITORY ${env.MODEL_REPOSITORY}`);
    assert.ok(repository.split(':')[0]! in compose.volumes, 'a named volume (shared by the replicas)');
    assert.notEqual(repository.split(':')[2], 'ro', 'writable: uploads');
    // Host port ranges as wide as the replica count: one port each ([host ip:]host ports:container port).
    const mappings = (replica.ports ?? []).map((mapping) => {
      const parts = mapping.split(':');
      const [from, to] = parts.at(-2)!.split('-').map(Number);
      assert.equal(to! - from! + 1, replica.deploy!.replicas, mapping);
      return { hostIp: parts.length === 3 ? parts[0] : undefined, container: Number(parts.at(-1)) };
    });
    const config = loadAppConfig({ ...env, ADMIN_TOKEN: 'a-token-of-sixteen-chars' });
    assert.deepEqual(mappings.map((m) => m.container), [config.HTTP_PORT, config.GRPC_PORT, config.ADMIN_PORT]);
    // The admin port (ADMIN_PORT) is published on the host's loopback only.
    assert.deepEqual(mappings.map((m) => m.hostIp), [undefined, undefined, '127.0.0.1']);
  });
});
