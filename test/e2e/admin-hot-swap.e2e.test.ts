import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { heavyModel } from '../../scripts/build-models.js';
import { bearer, classifierAnswering, getJson, makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

const TOKEN = 'hot-swap-test-token-0123456789';
const admin = bearer(TOKEN);
const classify = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };
const corrupt = new TextEncoder().encode('this is not an ONNX model');
/** Version v of the test models answers label v - 1, so an answer shows which version computed it. */
const versionFile = (version: 1 | 2 | 3) => classifierAnswering((version - 1) as 0 | 1 | 2);

/** Settles as `promise` does, or fails after `ms`: a deadlock fails the test instead of hanging it. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function writeVersion(repository: string, name: string, version: number, bytes: Uint8Array): Promise<void> {
  await mkdir(join(repository, name, String(version)), { recursive: true });
  await writeFile(join(repository, name, String(version), 'model.onnx'), bytes);
}

function labelOf(body: any): number {
  return body.outputs.find((o: { name: string }) => o.name === 'label').data[0];
}

/** One answer of the client loop, with where it falls among the swaps (counted by the client). */
interface Observation {
  /** Which of the concurrent clients sent it (each sends one request after the other). */
  readonly client: number;
  readonly status: number | 'network error';
  readonly body: any;
  /** Swaps whose answer had arrived when the request was sent. */
  readonly swapsAnsweredBeforeSend: number;
  /** Swaps that had been sent when the answer arrived. */
  readonly swapsSentBeforeAnswer: number;
}

/** Counts answers and lets the swapper wait until the traffic has gone on for a number of them. */
class Progress {
  private count = 0;
  private readonly waiters: { target: number; resolve: () => void }[] = [];

  answered(): void {
    this.count += 1;
    for (const waiter of this.waiters.filter((w) => w.target <= this.count)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  }

  /** Resolves once `more` further answers have arrived. */
  further(more: number): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ target: this.count + more, resolve }));
  }
}

describe('hot swap', () => {
  let repository: string;
  let server: TestServer;

  before(async () => {
    repository = await makeRepository([
      { name: 'swapped', version: 1, onnx: versionFile(1) },
      { name: 'swapped', version: 2, onnx: versionFile(2) },
      { name: 'swapped', version: 3, onnx: versionFile(3) },
      { name: 'busy', version: 1, onnx: versionFile(1), config: { version_policy: { all: {} } } },
      { name: 'busy', version: 2, onnx: versionFile(2) },
      { name: 'busy', version: 3, onnx: versionFile(3) },
      { name: 'reloaded', onnx: versionFile(1), config: { max_batch_size: 8 } },
      // Slow runs (tens of milliseconds), so that requests are still waiting when a swap retires their version.
      { name: 'slow', version: 1, onnx: heavyModel(512, 200) },
      { name: 'slow', version: 2, onnx: heavyModel(512, 200) },
    ]);
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN });
    // Added after start, so that the policy (latest 1) does not pick them at start.
    await writeVersion(repository, 'swapped', 4, corrupt);
    await writeVersion(repository, 'busy', 4, versionFile(1));
  });

  after(() => server?.close());

  const makeDefault = (model: string, version: number) =>
    requestJson('PUT', `${server.url}/admin/models/${model}/default-version`, { headers: admin, body: { version: String(version) } });

  it('swaps the default version under load without failing a request, each answer from one version that was the default then', async () => {
    const concurrency = 8;
    // Version 4's file is corrupt: that swap fails and the traffic stays on the version before it.
    const plan = [2, 1, 4, 3, 1, 2, 3];
    const defaults = [3]; // defaults[k]: the default once k swaps have answered
    const observations: Observation[] = [];
    const progress = new Progress();
    let swapsSent = 0;
    let swapsAnswered = 0;
    let stopped = false;

    const client = async (_: unknown, client: number) => {
      while (!stopped) {
        const swapsAnsweredBeforeSend = swapsAnswered;
        let status: Observation['status'];
        let body: any;
        try {
          ({ status, body } = await postJson(`${server.url}/v2/models/swapped/infer`, classify));
        } catch (error) {
          status = 'network error';
          body = String(error);
        }
        observations.push({ client, status, body, swapsAnsweredBeforeSend, swapsSentBeforeAnswer: swapsSent });
        progress.answered();
      }
    };

    const swapper = async () => {
      await progress.further(4 * concurrency);
      for (const target of plan) {
        swapsSent += 1;
        const swap = await makeDefault('swapped', target);
        swapsAnswered += 1;
        const previous = defaults[defaults.length - 1];
        if (target === 4) {
          assert.equal(swap.status, 400, JSON.stringify(swap.body));
          assert.match(swap.body.error, /version 4 failed to load/);
          defaults.push(previous);
        } else {
          assert.equal(swap.status, 200, JSON.stringify(swap.body));
          assert.deepEqual(swap.body, { name: 'swapped', previous_version: String(previous), version: String(target) });
          defaults.push(target);
        }
        // The swap has answered: a request sent now goes to the new default.
        const fresh = await postJson(`${server.url}/v2/models/swapped/infer`, classify);
        assert.equal(fresh.status, 200);
        assert.equal(fresh.body.model_version, String(defaults[defaults.length - 1]), `after the swap to ${target}`);
        await progress.further(4 * concurrency);
      }
    };

    const clients = Array.from({ length: concurrency }, client);
    try {
      await within(120_000, 'the swaps under load', swapper());
    } finally {
      stopped = true;
      await within(60_000, 'the client loop', Promise.all(clients));
    }

    const failures = observations.filter((o) => o.status !== 200);
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${observations.length} requests failed`);
    assert.ok(observations.length >= (plan.length + 1) * 4 * concurrency);
    const everDefault = new Set(defaults.map(String));
    for (const o of observations) {
      const version: string = o.body.model_version;
      assert.ok(everDefault.has(version), `an answer from version ${version}, never the default`);
      assert.equal(labelOf(o.body), Number(version) - 1, `the answer naming version ${version} was computed by it`);
      // Only the defaults from the one when the request was sent to the one when it was answered.
      const allowed = defaults.slice(o.swapsAnsweredBeforeSend, o.swapsSentBeforeAnswer + 1).map(String);
      assert.ok(allowed.includes(version), `sent after ${o.swapsAnsweredBeforeSend} swaps, answered within ${o.swapsSentBeforeAnswer}: version ${version} is not one of ${allowed.join(', ')}`);
    }
    assert.deepEqual([...new Set(observations.map((o) => o.body.model_version))].sort(), ['1', '2', '3']);
    // Each client, sending one request after the other, sees the defaults in the order they were made, never one again after a later one.
    const defaultsInOrder = defaults.map(String).filter((v, k, all) => k === 0 || all[k - 1] !== v);
    for (let client = 0; client < concurrency; client += 1) {
      const seen = observations.filter((o) => o.client === client).map((o) => o.body.model_version as string);
      const changes = seen.filter((v, k) => k === 0 || seen[k - 1] !== v);
      let at = 0;
      for (const version of changes) {
        while (at < defaultsInOrder.length && defaultsInOrder[at] !== version) at += 1;
        assert.ok(at < defaultsInOrder.length, `client ${client} saw ${changes.join(' -> ')}, not in the order of the defaults ${defaultsInOrder.join(' -> ')}`);
      }
    }

    const { body } = await requestJson('GET', `${server.url}/admin/models`, { headers: admin });
    const swapped = body.models.find((m: { name: string }) => m.name === 'swapped');
    assert.equal(swapped.default_version, '3');
    assert.deepEqual(
      swapped.versions.map((v: { version: string; state: string }) => [v.version, v.state]),
      [
        ['4', 'UNAVAILABLE'],
        ['3', 'READY'],
        ['2', 'UNAVAILABLE'],
        ['1', 'UNAVAILABLE'],
      ],
      'latest 1 keeps only the default',
    );
  });

  it('runs load, unload and swap calls fired at once on one model one after another: all answer, and the final state is that of the last one run', async () => {
    const pinned = await makeDefault('busy', 3);
    assert.equal(pinned.status, 200);
    const versionsUrl = `${server.url}/admin/models/busy/versions`;
    const stateOf = async () => {
      const { body } = await requestJson('GET', `${server.url}/admin/models`, { headers: admin });
      return body.models.find((m: { name: string }) => m.name === 'busy');
    };

    let initial = 3;
    for (let round = 1; round <= 4; round += 1) {
      // Version 4 is not READY when a round starts, so the answer of its unload tells the order of its load and unload.
      if ((await stateOf()).versions.some((v: { version: string; state: string }) => v.version === '4' && v.state === 'READY')) {
        assert.equal((await requestJson('POST', `${versionsUrl}/4/unload`, { headers: admin })).status, 200);
      }
      const [first, second] = [1, 2, 3].filter((v) => v !== initial);
      const [swapFirst, swapSecond, load4, unload4, unloadInitial, listed] = await within(
        60_000,
        `round ${round} of concurrent calls`,
        Promise.all([
          makeDefault('busy', first),
          makeDefault('busy', second),
          requestJson('POST', `${versionsUrl}/4/load`, { headers: admin }),
          requestJson('POST', `${versionsUrl}/4/unload`, { headers: admin }),
          requestJson('POST', `${versionsUrl}/${initial}/unload`, { headers: admin }),
          requestJson('GET', `${server.url}/admin/models`, { headers: admin }),
        ]),
      );
      const what = `round ${round}: ${JSON.stringify([swapFirst, swapSecond, load4, unload4, unloadInitial].map((a) => [a.status, a.body]))}`;
      assert.equal(swapFirst.status, 200, what);
      assert.equal(swapSecond.status, 200, what);
      assert.equal(load4.status, 200, what);
      assert.ok([200, 404, 409].includes(unload4.status), what);
      assert.ok([200, 409].includes(unloadInitial.status), what);
      assert.equal(listed.status, 200);

      // The swaps' previous versions chain them in the order they ran; the last one's version is the default.
      const ranFirstThenSecond = swapFirst.body.previous_version === String(initial) && swapSecond.body.previous_version === String(first);
      const ranSecondThenFirst = swapSecond.body.previous_version === String(initial) && swapFirst.body.previous_version === String(second);
      assert.ok(ranFirstThenSecond !== ranSecondThenFirst, `the swaps ran one after the other: ${what}`);
      const last = ranFirstThenSecond ? second : first;

      const busy = await stateOf();
      const states = Object.fromEntries(busy.versions.map((v: { version: string; state: string }) => [v.version, v.state]));
      assert.equal(busy.default_version, String(last), what);
      assert.equal(busy.serving_version, String(last), what);
      assert.equal(states[String(first)], 'READY', what);
      assert.equal(states[String(second)], 'READY', what);
      // Refused (409) while it was the pinned default, i.e. before both swaps; unloaded otherwise.
      assert.equal(states[String(initial)], unloadInitial.status === 200 ? 'UNAVAILABLE' : 'READY', what);
      // Unloaded (200) only after its load ran; otherwise the load ran last.
      assert.equal(states['4'], unload4.status === 200 ? 'UNAVAILABLE' : 'READY', what);
      assert.ok(!Object.values(states).some((s) => s === 'LOADING' || s === 'UNLOADING'), what);
      const answer = await postJson(`${server.url}/v2/models/busy/infer`, classify);
      assert.equal(answer.body.model_version, String(last));
      assert.equal(labelOf(answer.body), last - 1);
      initial = last;
    }
  });

  it("reloads a model with Triton's configuration override under load without failing a request", async () => {
    const concurrency = 8;
    const progress = new Progress();
    const failures: string[] = [];
    let answers = 0;
    let stopped = false;
    const client = async () => {
      while (!stopped) {
        try {
          const { status, body } = await postJson(`${server.url}/v2/models/reloaded/infer`, classify);
          if (status !== 200) failures.push(`${status} ${JSON.stringify(body)}`);
        } catch (error) {
          failures.push(String(error));
        }
        answers += 1;
        progress.answered();
      }
    };
    const reloader = async () => {
      await progress.further(4 * concurrency);
      for (const maxBatchSize of [2, 3, 4]) {
        const config = JSON.stringify({ max_batch_size: maxBatchSize });
        const load = await requestJson('POST', `${server.url}/v2/repository/models/reloaded/load`, { headers: admin, body: { parameters: { config } } });
        assert.equal(load.status, 200, JSON.stringify(load.body));
        const served = await requestJson('GET', `${server.url}/v2/models/reloaded/config`);
        assert.equal(served.body.max_batch_size, maxBatchSize);
        await progress.further(4 * concurrency);
      }
    };
    const clients = Array.from({ length: concurrency }, client);
    try {
      await within(120_000, 'the reloads under load', reloader());
    } finally {
      stopped = true;
      await within(60_000, 'the client loop', Promise.all(clients));
    }
    assert.deepEqual(failures.slice(0, 3), [], `${failures.length} of ${answers} requests failed`);
  });

  it('drains the version a swap retires: the requests it had accepted are answered by it', async () => {
    const x = { inputs: [{ name: 'x', shape: [1, 256], datatype: 'FP32', data: new Array(256).fill(0.5) }] };
    const requests = Array.from({ length: 8 }, () => postJson(`${server.url}/v2/models/slow/infer`, x));
    // Wait until the server holds several of them in version 2's queue, then swap to version 1 (latest 1 retires 2).
    await within(60_000, 'requests waiting in the queue of version 2', (async () => {
      for (;;) {
        const { body } = await getJson(`${server.url}/health`);
        const scheduler = body.details.queues.schedulers.find((s: { key: string }) => s.key === 'slow/2');
        if (scheduler && scheduler.queued >= 4) return;
        await sleep(2);
      }
    })());
    const swap = await makeDefault('slow', 1);
    assert.equal(swap.status, 200, JSON.stringify(swap.body));
    const answers = await within(60_000, 'the requests', Promise.all(requests));
    assert.deepEqual(answers.map((a) => a.status), new Array(8).fill(200), JSON.stringify(answers.map((a) => a.body)));
    assert.ok(answers.filter((a) => a.body.model_version === '2').length >= 4, 'the queued requests were answered by version 2');
    const { body } = await requestJson('GET', `${server.url}/admin/models`, { headers: admin });
    const slow = body.models.find((m: { name: string }) => m.name === 'slow');
    assert.deepEqual(slow.versions.map((v: { version: string; state: string }) => [v.version, v.state]), [['2', 'UNAVAILABLE'], ['1', 'READY']]);
  });
});
