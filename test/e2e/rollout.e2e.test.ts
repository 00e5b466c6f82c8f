import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { bucketOfKey, inShare } from '../../src/domain/rollout/traffic-split.js';
import { InferenceClient } from '../support/grpc-client.js';
import { assertMatchesComponent, keysIn } from '../support/openapi-validator.js';
import { faultyClassifierModel } from '../support/rollout-models.js';
import { bearer, classifierAnswering, makeRepository, requestJson, startServerOver, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Rollouts on the real app, over real sockets: the admin API, routing (split, sticky key, header
 * rules, gRPC metadata), shadow traffic that never reaches the client, and progressive plans that
 * roll back or promote by themselves, across a restart too. Decisions are awaited by polling GET
 * .../rollout a bounded number of times, never by sleeping a fixed time.
 */

const TOKEN = 'rollout-e2e-test-token-0123456789';
const admin = bearer(TOKEN);
const ENV = { ADMIN_TOKEN: TOKEN, ROLLOUT_EVALUATION_INTERVAL_MS: '20' };
const ALL_VERSIONS = { version_policy: { all: {} } };
/** Every element of each of these rows is above 3: the faulty model fails on all of them. */
const ROWS: number[][] = Array.from({ length: 10 }, (_, i) => [6.7 - i * 0.3, 3.0 + i * 0.1, 5.2 - i * 0.2, 4.3]);

interface Answer {
  readonly status: number;
  /** The `x-model-version` header. */
  readonly version: string | null;
  readonly body: any;
}

async function infer(url: string, model: string, options: { headers?: Record<string, string>; row?: number[]; version?: number } = {}): Promise<Answer> {
  const path = options.version === undefined ? `/v2/models/${model}/infer` : `/v2/models/${model}/versions/${options.version}/infer`;
  const body = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: options.row ?? ROWS[0] }] };
  const { status, body: answer, headers } = await requestJson('POST', `${url}${path}`, { headers: options.headers, body });
  if (status === 200) assert.equal(headers.get('x-model-version'), answer.model_version, 'the header names the version of the answer');
  return { status, version: headers.get('x-model-version'), body: answer };
}

/** `count` requests, `concurrency` at a time; request i made by `make(i)`. */
async function many(count: number, make: (i: number) => Promise<Answer>, concurrency = 16): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (let start = 0; start < count; start += concurrency) {
    answers.push(...(await Promise.all(Array.from({ length: Math.min(concurrency, count - start) }, (_, j) => make(start + j)))));
  }
  return answers;
}

/** How many answers each version gave (by `x-model-version`). */
function countByVersion(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) counts[String(answer.version)] = (counts[String(answer.version)] ?? 0) + 1;
  return counts;
}

async function putRollout(url: string, model: string, document: unknown): Promise<{ status: number; body: any }> {
  return requestJson('PUT', `${url}/admin/models/${model}/rollout`, { headers: admin, body: document });
}

async function startRollout(url: string, model: string, document: unknown): Promise<any> {
  const { status, body } = await putRollout(url, model, document);
  assert.equal(status, 200, JSON.stringify(body));
  return described(body);
}

async function rolloutOf(url: string, model: string): Promise<any> {
  const { status, body } = await requestJson('GET', `${url}/admin/models/${model}/rollout`, { headers: admin });
  assert.equal(status, 200, JSON.stringify(body));
  return described(body);
}

/** A rollout as the admin API answers it: in snake_case, as GET /admin/openapi.json describes it. */
function described(rollout: any): any {
  for (const key of keysIn(rollout)) assert.doesNotMatch(key, /[A-Z]/, `a camelCase key in ${JSON.stringify(rollout)}`);
  assertMatchesComponent('Rollout', rollout, 'the rollout');
  return rollout;
}

function figuresOf(rollout: any, version: number): any {
  return rollout.figures.find((f: { version: number }) => f.version === version);
}

/** Polls GET rollout (every 10 ms, at most `attempts` times) until `done` holds; fails with the last state. */
async function pollRollout(url: string, model: string, done: (rollout: any) => boolean, attempts = 300): Promise<any> {
  let rollout: any;
  for (let i = 0; i < attempts; i++) {
    rollout = await rolloutOf(url, model);
    if (done(rollout)) return rollout;
    await delay(10);
  }
  assert.fail(`the rollout of '${model}' never got there; last: ${JSON.stringify(rollout)}`);
}

/**
 * Sends rounds of traffic (`round()`), checking the rollout after each, until `done` holds (at most
 * `rounds` rounds); returns the rollout and every answer sent.
 */
async function driveUntil(url: string, model: string, done: (rollout: any) => boolean, round: () => Promise<Answer[]>, rounds = 100): Promise<{ rollout: any; answers: Answer[] }> {
  const answers: Answer[] = [];
  let rollout: any;
  for (let i = 0; i < rounds; i++) {
    answers.push(...(await round()));
    rollout = await rolloutOf(url, model);
    if (done(rollout)) return { rollout, answers };
  }
  assert.fail(`the rollout of '${model}' never got there after ${answers.length} requests; last: ${JSON.stringify(rollout)}`);
}

async function adminModel(url: string, name: string): Promise<any> {
  const { status, body } = await requestJson('GET', `${url}/admin/models`, { headers: admin });
  assert.equal(status, 200);
  return body.models.find((m: { name: string }) => m.name === name);
}

/** The outputs as a plain value (name -> data), for comparing answers. */
function outputsOf(answer: Answer): Record<string, number[]> {
  return Object.fromEntries(answer.body.outputs.map((o: { name: string; data: number[] }) => [o.name, o.data]));
}

/**
 * Asserts two classifier answers are the same: the same label, the same probabilities (to 1e-6: a
 * row may be computed in batches of other sizes).
 */
function assertSameAnswer(actual: Answer, expected: Answer, message: string): void {
  const [a, e] = [outputsOf(actual), outputsOf(expected)];
  assert.deepEqual(Object.keys(a).sort(), Object.keys(e).sort(), message);
  assert.deepEqual(a.label, e.label, message);
  assert.equal(a.probabilities!.length, e.probabilities!.length, message);
  a.probabilities!.forEach((p, i) => assert.ok(Math.abs(p - e.probabilities![i]!) <= 1e-6, `${message}: probabilities ${a.probabilities} vs ${e.probabilities}`));
}

/** The rollout saved in STATE_DIR for `model` (the state store's JSON files hold `{ revision, state }`). */
/** The rollout as saved in STATE_DIR/rollouts (a store of its own beside the model states). */
async function savedRollout(stateDir: string, model: string): Promise<any> {
  const rollouts = join(stateDir, 'rollouts');
  const files = await readdir(rollouts).catch(() => [] as string[]);
  for (const file of files.filter((name) => name.endsWith('.json') && !name.startsWith('.'))) {
    const { state } = JSON.parse(await readFile(join(rollouts, file), 'utf8'));
    if (state?.name === model) return state.rollout;
  }
  return undefined;
}

/** Keys whose bucket is in `[from, to)` percent of the canary split: a sticky key's side, known ahead. */
function keysBetween(from: number, to: number, count: number, prefix = 'user'): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) {
    const bucket = bucketOfKey(`${prefix}-${i}`, 'canary');
    if (!inShare(bucket, from) && inShare(bucket, to)) keys.push(`${prefix}-${i}`);
  }
  return keys;
}

describe('rollouts', () => {
  let server: TestServer;
  let url: string;

  before(async () => {
    const repository = await makeRepository([
      { name: 'admin', version: 1, onnx: classifierAnswering(0) },
      { name: 'admin', version: 2, onnx: classifierAnswering(1) },
      { name: 'split', version: 1, onnx: classifierAnswering(0), config: ALL_VERSIONS },
      { name: 'split', version: 2, onnx: classifierAnswering(1) },
      { name: 'split', version: 3, onnx: classifierAnswering(2) },
      { name: 'shadowfail', version: 1, onnx: classifierModel(), config: ALL_VERSIONS },
      { name: 'shadowfail', version: 2, onnx: faultyClassifierModel() },
      { name: 'shadowdiff', version: 1, onnx: classifierAnswering(0), config: ALL_VERSIONS },
      { name: 'shadowdiff', version: 2, onnx: classifierAnswering(1) },
      { name: 'shadowdiff', version: 3, onnx: classifierAnswering(0) },
      { name: 'faulty', version: 1, onnx: classifierModel(), config: ALL_VERSIONS },
      { name: 'faulty', version: 2, onnx: faultyClassifierModel() },
      { name: 'healthy', version: 1, onnx: classifierAnswering(0), config: { version_policy: { latest: { num_versions: 2 } } } },
      { name: 'healthy', version: 2, onnx: classifierAnswering(1) },
      { name: 'unload', version: 1, onnx: classifierAnswering(0), config: ALL_VERSIONS },
      { name: 'unload', version: 2, onnx: classifierAnswering(1) },
      { name: 'unload', version: 3, onnx: classifierAnswering(2) },
    ]);
    server = await startTestServer(repository, ENV);
    url = server.url;
  });

  after(async () => {
    await server?.close();
  });

  describe('admin API', () => {
    it('wants the admin token on every route (401)', async () => {
      const routes: [string, string][] = [
        ['PUT', '/admin/models/admin/rollout'],
        ['GET', '/admin/models/admin/rollout'],
        ['POST', '/admin/models/admin/rollout/promote'],
        ['POST', '/admin/models/admin/rollout/abort'],
      ];
      for (const [method, path] of routes) {
        const body = method === 'PUT' ? { stable: 2 } : undefined;
        for (const headers of [{}, bearer('not-the-admin-token-0123456789')]) {
          const answer = await requestJson(method, `${url}${path}`, { headers, body });
          assert.equal(answer.status, 401, `${method} ${path}: ${JSON.stringify(answer.body)}`);
          assert.equal(answer.headers.get('www-authenticate'), 'Bearer');
        }
      }
      assert.equal((await requestJson('GET', `${url}/admin/models/admin/rollout`, { headers: admin })).status, 404, 'nothing was started');
    });

    const badDocuments: [string, unknown, string][] = [
      ['a canary weight above 100', { stable: 2, canary: { version: 1, weight: 150 } }, 'canary.weight'],
      ['an unknown field', { stable: 2, traffic: 'all' }, 'traffic'],
      ['an unknown field of the canary', { stable: 2, canary: { version: 1, share: 10 } }, 'share'],
      ['no stable version', { canary: { version: 1, weight: 10 } }, 'stable'],
      ['a version that is not a positive integer', { stable: 'two' }, 'stable'],
      ['a rule header that is no header name', { stable: 2, rules: [{ header: 'x env', equals: 'a', version: 2 }] }, 'rules.0.header'],
      ['a shadow percent below 0', { stable: 2, shadow: { version: 1, percent: -5 } }, 'shadow.percent'],
      ['a step above 100', { stable: 2, canary: { version: 1 }, plan: { steps: [50, 101], slo: { max_error_rate: 0.1 } } }, 'plan.steps.1'],
      ['a plan without its SLO', { stable: 2, canary: { version: 1 }, plan: { steps: [50] } }, 'plan.slo'],
      ['an error rate above 1', { stable: 2, canary: { version: 1 }, plan: { steps: [50], slo: { max_error_rate: 5 } } }, 'plan.slo.max_error_rate'],
      ['steps that do not increase', { stable: 2, canary: { version: 1 }, plan: { steps: [50, 10], slo: { max_error_rate: 0.1 } } }, 'plan.steps must increase'],
      ['a plan without a canary', { stable: 2, plan: { steps: [50], slo: { max_error_rate: 0.1 } } }, 'plan needs a canary'],
      ['a canary that is the stable version', { stable: 2, canary: { version: '2', weight: 10 } }, 'canary.version 2 is the stable version'],
      ['a shadow that is the stable version', { stable: 2, shadow: { version: 2, percent: 10 } }, 'shadow.version 2'],
      ['a document that is not an object', [1, 2], 'body'],
      // Issue 15: 100,000 rules were accepted and made every unversioned request 4x slower.
      ['100,000 header rules', { stable: 2, rules: Array.from({ length: 100_000 }, (_, i) => ({ header: 'x-user', equals: String(i), version: 2 })) }, 'rules: must have at most 64 rules'],
      ['a rule value of 2000 characters', { stable: 2, rules: [{ header: 'x-user', equals: 'u'.repeat(2000), version: 2 }] }, 'rules.0.equals: must be at most 1024'],
      ['a rule header of 300 characters', { stable: 2, rules: [{ header: 'x'.repeat(300), equals: 'a', version: 2 }] }, 'rules.0.header: must be at most 256'],
      ['33 plan steps', { stable: 2, canary: { version: 1 }, plan: { steps: Array.from({ length: 33 }, (_, i) => i + 1), slo: { max_error_rate: 0.1 } } }, 'plan.steps: must have at most 32 steps'],
    ];
    for (const [what, document, field] of badDocuments) {
      it(`refuses ${what} with 400 naming it`, async () => {
        const { status, body } = await putRollout(url, 'admin', document);
        assert.equal(status, 400, JSON.stringify(body));
        assert.ok(body.error.includes(field), `expected the error to name ${JSON.stringify(field)}: ${body.error}`);
      });
    }

    it('answers 404 for an unknown model, and for a model without a rollout', async () => {
      assert.equal((await putRollout(url, 'nope', { stable: 1 })).status, 404);
      assert.equal((await requestJson('GET', `${url}/admin/models/nope/rollout`, { headers: admin })).status, 404);
      const none = await requestJson('GET', `${url}/admin/models/admin/rollout`, { headers: admin });
      assert.equal(none.status, 404);
      assert.match(none.body.error, /model 'admin' has no rollout/);
      assert.equal((await requestJson('POST', `${url}/admin/models/admin/rollout/promote`, { headers: admin })).status, 404);
      assert.equal((await requestJson('POST', `${url}/admin/models/admin/rollout/abort`, { headers: admin })).status, 404);
    });

    it('answers 409 for a version that is not READY (version 1 of admin is not loaded: its policy keeps the latest)', async () => {
      for (const document of [{ stable: 2, canary: { version: 1, weight: 10 } }, { stable: 2, shadow: { version: 1, percent: 10 } }, { stable: 1 }, { stable: 2, rules: [{ header: 'x-env', equals: 'a', version: 9 }] }]) {
        const { status, body } = await putRollout(url, 'admin', document);
        assert.equal(status, 409, JSON.stringify(document));
        assert.match(body.error, /version (1|9) of model 'admin' is not READY/);
      }
      assert.equal((await requestJson('GET', `${url}/admin/models/admin/rollout`, { headers: admin })).status, 404, 'nothing was started');
    });

    it('starts a rollout and shows it; abort, then promote and abort are refused with 409', async () => {
      const started = await startRollout(url, 'admin', { stable: '2', sticky_header: 'X-User', rules: [{ header: 'X-Env', equals: 'staging', version: 2 }] });
      assert.equal(started.model, 'admin');
      assert.equal(started.phase, 'ACTIVE');
      assert.equal(started.stable, '2');
      assert.equal(started.sticky_header, 'x-user', 'header names in lower case');
      assert.deepEqual(started.rules, [{ header: 'x-env', equals: 'staging', version: '2' }]);
      assert.deepEqual(started.history.map((d: any) => d.action), ['started']);
      assert.deepEqual(await rolloutOf(url, 'admin'), started, 'GET shows what PUT answered');

      const promote = await requestJson('POST', `${url}/admin/models/admin/rollout/promote`, { headers: admin });
      assert.equal(promote.status, 409, 'no canary to promote');
      assert.match(promote.body.error, /no canary to promote/);

      const aborted = await requestJson('POST', `${url}/admin/models/admin/rollout/abort`, { headers: admin });
      assert.equal(aborted.status, 200);
      assert.equal(aborted.body.phase, 'ABORTED');
      assert.deepEqual(aborted.body.history.map((d: any) => d.action), ['started', 'aborted']);
      for (const action of ['promote', 'abort']) {
        const refused = await requestJson('POST', `${url}/admin/models/admin/rollout/${action}`, { headers: admin });
        assert.equal(refused.status, 409, action);
        assert.match(refused.body.error, /ABORTED/);
      }
    });

    it("promotes by an operator's request: the canary becomes the model's default version", async () => {
      const load = await requestJson('POST', `${url}/admin/models/admin/versions/1/load`, { headers: admin });
      assert.equal(load.status, 200, JSON.stringify(load.body));
      const started = await startRollout(url, 'admin', { stable: 2, canary: { version: 1, weight: 10 } });
      assert.deepEqual(started.canary, { version: '1', weight: 10 });
      assert.deepEqual(started.history.map((d: any) => d.action), ['started'], 'a new rollout replaces the aborted one');

      const promoted = await requestJson('POST', `${url}/admin/models/admin/rollout/promote`, { headers: admin });
      assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
      assert.equal(promoted.body.phase, 'PROMOTED');
      assert.equal(promoted.body.stable, '1');
      assert.equal((await adminModel(url, 'admin')).default_version, '1');
      const answers = await many(20, () => infer(url, 'admin'));
      assert.deepEqual(countByVersion(answers), { 1: 20 });
      assert.equal((await requestJson('POST', `${url}/admin/models/admin/rollout/promote`, { headers: admin })).status, 409, 'promote when not ACTIVE');
    });
  });

  describe('routing', () => {
    it('splits requests by the canary weight: 30% of 400 within tolerance, every answer 200', async () => {
      await startRollout(url, 'split', { stable: 1, canary: { version: 2, weight: 30 } });
      const answers = await many(400, () => infer(url, 'split'));
      assert.ok(answers.every((a) => a.status === 200));
      const counts = countByVersion(answers);
      assert.deepEqual(Object.keys(counts).sort(), ['1', '2']);
      assert.ok(counts['2']! >= 80 && counts['2']! <= 160, `the canary took ${counts['2']} of 400 (30% expected)`);
      const rollout = await rolloutOf(url, 'split');
      assert.equal(figuresOf(rollout, 2).requests, counts['2'], 'the figures count what the canary served');
      assert.equal(figuresOf(rollout, 1).requests, counts['1']);
    });

    it('keeps a sticky key on one side of the split, the side its bucket says', async () => {
      await startRollout(url, 'split', { stable: 1, canary: { version: 2, weight: 50 }, sticky_header: 'X-User' });
      const keys = [...keysBetween(0, 50, 10), ...keysBetween(50, 100, 10)];
      const answers = await many(keys.length * 4, (i) => infer(url, 'split', { headers: { 'x-user': keys[i % keys.length]! } }));
      keys.forEach((key, k) => {
        const versions = answers.filter((_, i) => i % keys.length === k).map((a) => a.version);
        assert.deepEqual(versions, new Array(4).fill(k < 10 ? '2' : '1'), `key ${key}`);
      });
    });

    describe('header rules', () => {
      before(async () => {
        await startRollout(url, 'split', {
          stable: 1,
          canary: { version: 2, weight: 100 },
          rules: [
            { header: 'X-Env', equals: 'staging', version: 3 },
            { header: 'x-tier', equals: 'gold', version: 1 },
            { header: 'x-env', equals: 'staging', version: 2 },
          ],
        });
      });

      it('send a matching request to the first matching rule, ahead of the split', async () => {
        const cases: [Record<string, string>, string][] = [
          [{}, '2'],
          [{ 'x-env': 'prod' }, '2'],
          [{ 'x-env': 'staging' }, '3'],
          [{ 'X-ENV': 'staging' }, '3'],
          [{ 'x-tier': 'gold' }, '1'],
          [{ 'x-tier': 'gold', 'x-env': 'staging' }, '3'],
          [{ 'x-env': 'Staging' }, '2'],
        ];
        for (const [headers, version] of cases) {
          for (let i = 0; i < 3; i++) assert.equal((await infer(url, 'split', { headers })).version, version, JSON.stringify(headers));
        }
      });

      it('a request naming /versions/{v} bypasses the rollout, and is not counted in its figures', async () => {
        const before = (await rolloutOf(url, 'split')).figures;
        for (const version of [1, 2, 3]) {
          for (const headers of [{}, { 'x-env': 'staging' }, { 'x-tier': 'gold' }] as Record<string, string>[]) {
            const answer = await infer(url, 'split', { version, headers });
            assert.equal(answer.status, 200);
            assert.equal(answer.version, String(version));
          }
        }
        assert.deepEqual((await rolloutOf(url, 'split')).figures, before);
      });

      it('gRPC ModelInfer: routed by the call metadata, the version in the initial metadata', async () => {
        const client = new InferenceClient(server.server.grpcAddress);
        try {
          const request = { model_name: 'split', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: ROWS[0] } }] };
          const cases: [Record<string, string>, string][] = [
            [{}, '2'],
            [{ 'x-env': 'staging' }, '3'],
            [{ 'x-tier': 'gold' }, '1'],
          ];
          for (const [metadata, version] of cases) {
            const { response, metadata: initial } = await client.inferWithMetadata(request, { metadata });
            assert.equal(response.model_version, version, JSON.stringify(metadata));
            assert.deepEqual(initial['x-model-version'], [version]);
          }
          const named = await client.inferWithMetadata({ ...request, model_version: '1' }, { metadata: { 'x-env': 'staging' } });
          assert.equal(named.response.model_version, '1', 'a named version bypasses the rules');
          assert.deepEqual(named.metadata['x-model-version'], ['1']);
        } finally {
          client.close();
        }
      });
    });
  });

  describe('shadow', () => {
    it("never changes the client's answer or status, even when the shadow version fails", async () => {
      const expected = await Promise.all(ROWS.map((row) => infer(url, 'shadowfail', { version: 1, row })));
      const failing = await infer(url, 'shadowfail', { version: 2, row: ROWS[0] });
      assert.equal(failing.status, 500, 'version 2 fails on these rows');
      assert.match(failing.body.error, /indices element out of data bounds/);

      await startRollout(url, 'shadowfail', { stable: 1, shadow: { version: 2, percent: 100 } });
      const answers = await many(60, (i) => infer(url, 'shadowfail', { row: ROWS[i % ROWS.length] }), 10);
      answers.forEach((answer, i) => {
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.version, '1');
        assertSameAnswer(answer, expected[i % ROWS.length]!, `answer ${i}`);
      });

      const rollout = await pollRollout(url, 'shadowfail', (r) => figuresOf(r, 2).requests === 60);
      assert.deepEqual([figuresOf(rollout, 2).errors, figuresOf(rollout, 2).error_rate], [60, 1], "the figures show the shadow's failures");
      assert.deepEqual([figuresOf(rollout, 1).requests, figuresOf(rollout, 1).errors], [60, 0]);
      assert.equal(rollout.phase, 'ACTIVE');
    });

    it('measures how far the shadow answers diverge from the stable ones', async () => {
      await startRollout(url, 'shadowdiff', { stable: 1, shadow: { version: 2, percent: 100 } });
      const answers = await many(20, (i) => infer(url, 'shadowdiff', { row: ROWS[i % ROWS.length] }), 10);
      assert.ok(answers.every((a) => a.status === 200 && a.version === '1' && outputsOf(a).label!.toString() === '0'));
      const diverging = await pollRollout(url, 'shadowdiff', (r) => figuresOf(r, 2).requests === 20);
      assert.equal(figuresOf(diverging, 2).errors, 0);
      assert.equal(figuresOf(diverging, 2).mean_divergence, 1, 'labels 0 and 1: a divergence of 1 on every request');

      await startRollout(url, 'shadowdiff', { stable: 1, shadow: { version: 3, percent: 100 } });
      await many(20, (i) => infer(url, 'shadowdiff', { row: ROWS[i % ROWS.length] }), 10);
      const same = await pollRollout(url, 'shadowdiff', (r) => figuresOf(r, 3).requests === 20);
      assert.ok(figuresOf(same, 3).mean_divergence < 1e-6, `the same model: no divergence (${figuresOf(same, 3).mean_divergence})`);
      assert.equal(figuresOf(same, 3).errors, 0);
    });
  });

  describe('progressive plans', () => {
    it('rolls an injected faulty canary back by itself; every request then goes to the stable version', async () => {
      await startRollout(url, 'faulty', {
        stable: 1,
        canary: { version: 2 },
        plan: { steps: [50, 100], min_requests: 20, min_dwell_seconds: 0, slo: { max_error_rate: 0.05 } },
      });
      const { rollout, answers } = await driveUntil(url, 'faulty', (r) => r.phase !== 'ACTIVE', () => many(10, (i) => infer(url, 'faulty', { row: ROWS[i] })));
      assert.equal(rollout.phase, 'ROLLED_BACK');
      assert.ok(answers.some((a) => a.status === 500), 'the canary did fail requests before the rollback');
      assert.ok(answers.every((a) => (a.status === 200 && a.version === '1') || a.status === 500), 'only the canary failed');

      const decision = rollout.history.at(-1);
      assert.deepEqual(rollout.history.map((d: any) => d.action), ['started', 'rolled_back']);
      assert.equal(decision.action, 'rolled_back');
      assert.equal(decision.step, 0);
      assert.equal(decision.weight, 50);
      assert.match(decision.reason, /every request goes to the stable version 1/);
      const canary = decision.figures.find((f: any) => f.version === 2);
      assert.ok(canary.errors >= 2 && canary.error_rate > 0.05, `the figures of the decision: ${JSON.stringify(canary)}`);
      assert.equal(rollout.canary.weight, 0);
      assert.equal(rollout.step, undefined);

      const afterwards = await many(200, (i) => infer(url, 'faulty', { row: ROWS[i % ROWS.length] }));
      assert.deepEqual(
        afterwards.map((a) => [a.status, a.version]).filter(([status, version]) => status !== 200 || version !== '1'),
        [],
        'zero failures, every answer from the stable version',
      );
      assert.equal((await rolloutOf(url, 'faulty')).phase, 'ROLLED_BACK');
    });

    it("promotes a healthy canary through every step; the model's default version becomes the canary", async () => {
      await startRollout(url, 'healthy', {
        stable: 1,
        canary: { version: 2 },
        plan: { steps: [20, 50, 100], min_requests: 20, min_dwell_seconds: 0, slo: { max_error_rate: 0.05 } },
      });
      const { rollout, answers } = await driveUntil(url, 'healthy', (r) => r.phase !== 'ACTIVE', () => many(20, (i) => infer(url, 'healthy', { row: ROWS[i % ROWS.length] })));
      assert.ok(answers.every((a) => a.status === 200));
      assert.equal(rollout.phase, 'PROMOTED');
      assert.equal(rollout.stable, '2');
      assert.deepEqual(
        rollout.history.map((d: any) => [d.action, d.step, d.weight]),
        [
          ['started', 0, 20],
          ['advanced', 1, 50],
          ['advanced', 2, 100],
          ['promoted', undefined, undefined],
        ],
      );
      for (const decision of rollout.history.slice(1)) assert.ok(decision.figures.find((f: any) => f.version === 2).requests >= 20, JSON.stringify(decision));

      let model: any;
      for (let i = 0; i < 300 && model?.default_version !== '2'; i++) {
        model = await adminModel(url, 'healthy');
        if (model.default_version !== '2') await delay(10);
      }
      assert.equal(model.default_version, '2');
      assert.deepEqual(countByVersion(await many(20, () => infer(url, 'healthy'))), { 2: 20 });
    });

    it('takes a canary unloaded through the admin API out of routing at once', async () => {
      await startRollout(url, 'unload', { stable: 1, canary: { version: 2, weight: 50 } });
      assert.deepEqual(Object.keys(countByVersion(await many(60, () => infer(url, 'unload')))).sort(), ['1', '2']);

      const unloaded = await requestJson('POST', `${url}/admin/models/unload/versions/2/unload`, { headers: admin });
      assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
      const rollout = await rolloutOf(url, 'unload');
      assert.equal(rollout.canary, undefined);
      assert.equal(rollout.history.at(-1).action, 'version_removed');
      // Version 3, the highest READY one, is the model's default: an answer from it would mean
      // the rollout still routed to the unloaded canary and fell back to the default.
      assert.deepEqual(countByVersion(await many(100, () => infer(url, 'unload'))), { 1: 100 });
    });
  });
});

describe('a rollout across a restart', () => {
  const PLAN = { steps: [20, 50], min_requests: 30, min_dwell_seconds: 0, slo: { max_error_rate: 0.05 } };
  /** In the canary from 20% on; between 20% and 50% only; never in it below 100%. */
  const canaryAt20 = keysBetween(0, 20, 40, 'early');
  const canaryAt50 = keysBetween(20, 50, 10, 'late');
  const stableKeys = keysBetween(50, 100, 10, 'stable');
  let stateDir: string;
  let repository: string;
  let server: TestServer | undefined;
  let beforeRestart: any;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-rollout-state-'));
    repository = await makeRepository([
      { name: 'resume', version: 1, onnx: classifierAnswering(0), config: ALL_VERSIONS },
      { name: 'resume', version: 2, onnx: classifierAnswering(1) },
    ]);
    server = await startServerOver(repository, { ...ENV, STATE_DIR: stateDir });
    await startRollout(server.url, 'resume', { stable: 1, canary: { version: 2 }, sticky_header: 'x-user', plan: PLAN });
    const first = server.url;
    // Only keys on the canary at 20%: the first step has its 30 requests after 30 of them.
    const { rollout } = await driveUntil(first, 'resume', (r) => r.step === 1, () => many(10, (i) => infer(first, 'resume', { headers: { 'x-user': canaryAt20[i]! } })), 10);
    beforeRestart = rollout;
    // GET shows a decision once taken; it is on disk a moment later.
    for (let i = 0; i < 300 && (await savedRollout(stateDir, 'resume'))?.step !== 1; i++) await delay(10);
    assert.equal((await savedRollout(stateDir, 'resume'))?.step, 1, 'the advance is saved');
    await server.close();
    server = await startServerOver(repository, { ...ENV, STATE_DIR: stateDir });
  });

  after(async () => {
    await server?.close();
    await rm(repository, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  });

  it('resumes at the same step: same phase, weight and history', async () => {
    assert.deepEqual(beforeRestart.history.map((d: any) => [d.action, d.step, d.weight]), [
      ['started', 0, 20],
      ['advanced', 1, 50],
    ]);
    const resumed = await rolloutOf(server!.url, 'resume');
    assert.equal(resumed.phase, 'ACTIVE');
    assert.equal(resumed.step, 1);
    assert.deepEqual(resumed.canary, { version: '2', weight: 50 });
    assert.deepEqual(resumed.history, beforeRestart.history);
    assert.deepEqual(
      resumed.figures.map((f: any) => f.requests),
      [0, 0],
      "the step's figures start again from zero",
    );
  });

  it('routes at the resumed step: keys between 20% and 50% on the canary, the others where they were', async () => {
    const url = server!.url;
    for (const [keys, version] of [[canaryAt50, '2'], [stableKeys, '1'], [canaryAt20.slice(0, 10), '2']] as const) {
      const answers = await many(keys.length, (i) => infer(url, 'resume', { headers: { 'x-user': keys[i]! } }));
      assert.deepEqual(answers.map((a) => a.version), new Array(keys.length).fill(version));
    }
    assert.equal((await rolloutOf(url, 'resume')).step, 1, '20 canary requests: the step goes on');
  });

  it('goes on with the plan after the restart, to the promotion', async () => {
    const url = server!.url;
    const { rollout } = await driveUntil(url, 'resume', (r) => r.phase !== 'ACTIVE', () => many(10, (i) => infer(url, 'resume', { headers: { 'x-user': canaryAt20[i]! } })), 20);
    assert.equal(rollout.phase, 'PROMOTED');
    assert.deepEqual(rollout.history.map((d: any) => d.action), ['started', 'advanced', 'promoted']);
    assert.deepEqual(countByVersion(await many(20, (i) => infer(url, 'resume', { headers: { 'x-user': stableKeys[i % 10]! } }))), { 2: 20 });
  });
});
