// Static checks of the deployment files under docker/: no Docker engine runs in CI, so the
// Dockerfile, compose file and Kubernetes manifest are read as text and checked against the
// project (package.json scripts, tsconfig outDir, health endpoints).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
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

// ---- A minimal YAML reader: the indented block under a key, as text ----

/** The lines under the first `key:` line (more indented than it), or undefined if the key is absent. */
function yamlBlock(text: string, key: string): string | undefined {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((l) => new RegExp(`^\\s*(- )?${key}:`).test(l));
  if (start === -1) return undefined;
  const indent = lines[start]!.search(/\S/);
  const block: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== '' && !line.trim().startsWith('#') && line.search(/\S/) <= indent) break;
    block.push(line);
  }
  return block.join('\n');
}

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
  const compose = read('docker/compose.yaml');

  it('builds docker/Dockerfile with the repository root as context', () => {
    const build = yamlBlock(compose, 'build');
    assert.ok(build, 'no build section');
    const context = /^\s*context:\s*["']?([^"'\s]+)/m.exec(build)?.[1];
    const dockerfilePath = /^\s*dockerfile:\s*["']?([^"'\s]+)/m.exec(build)?.[1];
    assert.ok(context && dockerfilePath, 'build needs context and dockerfile');
    assert.equal(path.resolve(root, 'docker', context), root, 'the context should be the repository root');
    assert.ok(existsSync(path.resolve(root, 'docker', context, dockerfilePath)), `${dockerfilePath} not found from ${context}`);
  });

  it('health-checks a V2 health endpoint and publishes the ports', () => {
    const healthcheck = yamlBlock(compose, 'healthcheck');
    assert.ok(healthcheck, 'no healthcheck');
    const paths = healthcheck.match(HEALTH_PATH) ?? [];
    assert.ok(paths.length > 0, 'the healthcheck probes no /v2/health/ path');
    for (const p of paths) assert.ok(p === LIVE || p === READY, `unknown health path ${p}`);
    for (const port of ['8000', '8001', '8002']) assert.match(compose, new RegExp(`["']?${port}:${port}["']?`));
    assert.match(compose, /^\s*stop_grace_period:\s*30s\s*$/m);
    assert.match(compose, /^\s*restart:\s*unless-stopped\s*$/m);
  });
});

describe('docker/kubernetes.yaml', () => {
  const manifest = read('docker/kubernetes.yaml');
  const probePath = (probe: string): string | undefined => {
    const block = yamlBlock(manifest, probe);
    return block === undefined ? undefined : /^\s*path:\s*["']?([^"'\s]+)/m.exec(block)?.[1];
  };

  it(`probes liveness on ${LIVE} and readiness on ${READY}`, () => {
    assert.equal(probePath('livenessProbe'), LIVE);
    assert.equal(probePath('readinessProbe'), READY);
    const startup = probePath('startupProbe');
    assert.ok(startup === LIVE || startup === READY, `startupProbe path ${startup}`);
    for (const p of manifest.match(HEALTH_PATH) ?? []) assert.ok(p === LIVE || p === READY, `unknown health path ${p}`);
  });

  it('declares a Deployment and a Service with the three ports', () => {
    assert.match(manifest, /^kind:\s*Deployment\s*$/m);
    assert.match(manifest, /^kind:\s*Service\s*$/m);
    for (const port of ['8000', '8001', '8002']) {
      assert.match(manifest, new RegExp(`containerPort:\\s*${port}\\b`), `no containerPort ${port}`);
      assert.match(manifest, new RegExp(`^\\s*port:\\s*${port}\\b`, 'm'), `the Service has no port ${port}`);
    }
  });

  it('runs non-root on a read-only root filesystem with a writable /tmp', () => {
    assert.match(manifest, /runAsNonRoot:\s*true/);
    assert.match(manifest, /readOnlyRootFilesystem:\s*true/);
    assert.match(manifest, /mountPath:\s*\/tmp\b/);
    assert.match(manifest, /emptyDir:/);
  });

  it("gives the pod more time than the server's own SHUTDOWN_GRACE_MS, so the server finishes its shutdown first", () => {
    const podSeconds = Number(/terminationGracePeriodSeconds:\s*(\d+)/.exec(manifest)?.[1]);
    const serverMs = Number(/name:\s*SHUTDOWN_GRACE_MS\s*\n\s*value:\s*"(\d+)"/.exec(manifest)?.[1]);
    assert.ok(podSeconds > 0 && serverMs > 0, 'both are set');
    assert.ok(podSeconds * 1000 > serverMs, `${podSeconds} s is not above SHUTDOWN_GRACE_MS ${serverMs} ms`);
  });

  it('mounts a writable volume at STATE_DIR, since the root filesystem is read-only', () => {
    const stateDir = /name:\s*STATE_DIR\s*\n\s*value:\s*(\S+)/.exec(manifest)?.[1];
    assert.ok(stateDir, 'STATE_DIR is not set');
    assert.match(manifest, new RegExp(`mountPath:\\s*${stateDir.replace(/[/.]/g, '\\$&')}\\s*$`, 'm'), `nothing is mounted at ${stateDir}`);
  });
});
