import { runtimeKey } from '../../../support/runtime-keys.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadAppConfig } from '../../../../src/infra/config/app-config.js';
import { FaultInjection, type WorkerFault } from '../../../../src/infra/onnx/fault-injection.js';
import { assertErrorMentions } from '../../support/domain-error.assertions.js';

/**
 * What the engine is told to do wrong on each run of a model version. Shares are dealt
 * deterministically, so the runs that fail are known in advance: the test names them.
 */

/** The 1-based numbers of the runs (of `count` asked for `key`) for which `pick` holds. */
function runsWhere(faults: FaultInjection, key: string, count: number, pick: (fault: WorkerFault | undefined) => boolean): number[] {
  const runs: number[] = [];
  for (let run = 1; run <= count; run++) if (pick(faults.next(runtimeKey(key)))) runs.push(run);
  return runs;
}

const fails = (fault: WorkerFault | undefined) => fault?.fail === true;
const crashes = (fault: WorkerFault | undefined) => fault?.crash === true;

function fromEnv(json: string): FaultInjection {
  return new FaultInjection(loadAppConfig({ FAULT_INJECTION: json }));
}

describe('FaultInjection', () => {
  it('injects nothing without a plan, with or without a configuration', () => {
    assert.equal(new FaultInjection().next(runtimeKey('classifier/1')), undefined);
    assert.equal(new FaultInjection(loadAppConfig({})).next(runtimeKey('classifier/1')), undefined);
  });

  describe('deals shares deterministically', () => {
    const dealt: [string, object, (f: WorkerFault | undefined) => boolean, number[]][] = [
      ['error_rate 0.5: every other run fails, starting with the second', { error_rate: 0.5 }, fails, [2, 4, 6, 8, 10, 12]],
      ['error_rate 0.25: runs 4, 8, 12', { error_rate: 0.25 }, fails, [4, 8, 12]],
      ['error_rate 1: every run', { error_rate: 1 }, fails, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]],
      ['error_rate 0: none', { error_rate: 0 }, fails, []],
      ['crash_rate 1/3: runs 3, 6, 9, 12', { crash_rate: 1 / 3 }, crashes, [3, 6, 9, 12]],
      ['crash_rate 0.1: run 10', { crash_rate: 0.1 }, crashes, [10]],
    ];
    for (const [what, plan, pick, runs] of dealt) {
      it(what, () => {
        const faults = new FaultInjection();
        faults.set('m', plan);
        assert.deepEqual(runsWhere(faults, 'm/1', 12, pick), runs);
      });
    }

    it('the same way every time: a plan set again starts the deal again', () => {
      const faults = new FaultInjection();
      faults.set('m', { error_rate: 0.5 });
      faults.next(runtimeKey('m/1'));
      faults.set('m', { error_rate: 0.5 });
      assert.deepEqual(runsWhere(faults, 'm/1', 4, fails), [2, 4]);
    });

    it('a run that crashes does not also fail; both shares are dealt in full', () => {
      const faults = new FaultInjection();
      faults.set('m', { error_rate: 0.5, crash_rate: 0.5 });
      const dealt = Array.from({ length: 20 }, () => faults.next(runtimeKey('m/1'))!);
      assert.ok(dealt.every((fault) => !(fault.crash && fault.fail)));
      assert.equal(dealt.filter((fault) => fault.crash).length, 10);
      assert.ok(dealt.filter((fault) => fault.fail).length >= 9, 'a failure due on a crashing run comes on the next one');
    });
  });

  it('adds latency_ms to every run of the target, and only to it', () => {
    const faults = new FaultInjection();
    faults.set('slow', { latency_ms: 250 });
    for (let i = 0; i < 3; i++) assert.deepEqual(faults.next(runtimeKey('slow/1')), { delayMs: 250, fail: false, crash: false });
    assert.equal(faults.next(runtimeKey('fast/1')), undefined);
    assert.equal(faults.next(runtimeKey('slower/1')), undefined, 'a model whose name starts like the target');
  });

  it("prefers a version's plan to its model's", () => {
    const faults = new FaultInjection();
    faults.set('m', { error_rate: 1 });
    faults.set('m/2', { latency_ms: 40 });
    assert.deepEqual(faults.next(runtimeKey('m/2')), { delayMs: 40, fail: false, crash: false });
    assert.equal(faults.next(runtimeKey('m/1'))?.fail, true, 'other versions follow the model plan');
    assert.equal(faults.next(runtimeKey('m/3'))?.fail, true);
  });

  it('follows a version through its reloads (runtime keys "m/1#2"), dealing on one count', () => {
    const faults = new FaultInjection();
    faults.set('m/1', { error_rate: 0.5 });
    assert.deepEqual(
      ['m/1', 'm/1#2', 'm/1#2', 'm/1#3'].map((key) => faults.next(runtimeKey(key))?.fail),
      [false, true, false, true],
    );
    faults.set('n', { crash_rate: 1 });
    assert.equal(faults.next(runtimeKey('n/4#7'))?.crash, true, 'a model plan reaches a reloaded version too');
    assert.equal(faults.next(runtimeKey('m/2#2')), undefined, 'another version of m has no plan');
  });

  it('removes a plan when set without one', () => {
    const faults = new FaultInjection();
    faults.set('m', { error_rate: 1 });
    faults.set('m/1', { latency_ms: 5 });
    faults.set('m/1');
    assert.equal(faults.next(runtimeKey('m/1'))?.fail, true, 'the model plan applies again');
    faults.set('m');
    assert.equal(faults.next(runtimeKey('m/1')), undefined);
  });

  describe('FAULT_INJECTION', () => {
    it('sets the plans it names, by model and by model/version', () => {
      const faults = fromEnv('{"flaky": {"error_rate": 0.5}, "flaky/2": {"latency_ms": 7}, "crashy/1": {"crash_rate": 1}}');
      assert.deepEqual(runsWhere(faults, 'flaky/1', 4, fails), [2, 4]);
      assert.deepEqual(faults.next(runtimeKey('flaky/2')), { delayMs: 7, fail: false, crash: false });
      assert.equal(faults.next(runtimeKey('crashy/1'))?.crash, true);
      assert.equal(faults.next(runtimeKey('crashy/2')), undefined);
    });

    it('delays the loads of the versions a plan names (load_latency_ms), and no run', () => {
      const faults = fromEnv('{"slow/2": {"load_latency_ms": 30000}, "sluggish": {"load_latency_ms": 5}}');
      assert.equal(faults.loadDelayMs(runtimeKey('slow/2')), 30000);
      assert.equal(faults.loadDelayMs(runtimeKey('slow/1')), 0);
      assert.equal(faults.loadDelayMs(runtimeKey('sluggish/4')), 5);
      assert.equal(faults.loadDelayMs(runtimeKey('other/1')), 0);
      assert.deepEqual(faults.next(runtimeKey('slow/2')), { delayMs: undefined, fail: false, crash: false });
    });

    const invalid: [string, string, string[]][] = [
      ['a negative load latency', '{"slow": {"load_latency_ms": -1}}', ['FAULT_INJECTION', 'slow.load_latency_ms']],
      ['text that is not JSON', '{flaky: 1}', ['FAULT_INJECTION', 'not JSON']],
      ['a JSON value that is not an object', '[1]', ['FAULT_INJECTION', '(root)']],
      ['an error_rate above 1', '{"flaky": {"error_rate": 2}}', ['FAULT_INJECTION', 'flaky.error_rate']],
      ['a negative crash_rate', '{"flaky": {"crash_rate": -0.1}}', ['FAULT_INJECTION', 'flaky.crash_rate']],
      ['a latency that is not a whole number of ms', '{"flaky": {"latency_ms": 1.5}}', ['FAULT_INJECTION', 'flaky.latency_ms']],
      ['a rate given as a string', '{"flaky": {"error_rate": "0.5"}}', ['FAULT_INJECTION', 'flaky.error_rate']],
      ['a field a plan does not have (a typo)', '{"flaky": {"latency": 100}}', ['FAULT_INJECTION', 'flaky', 'latency']],
      ['a plan that is not an object', '{"flaky": 0.5}', ['FAULT_INJECTION', 'flaky']],
      ['a version that is not a number', '{"flaky/one": {"error_rate": 1}}', ['FAULT_INJECTION', 'flaky/one']],
    ];
    for (const [what, json, mentions] of invalid) {
      it(`refuses ${what}, naming it`, () => {
        assertErrorMentions(() => fromEnv(json), mentions);
      });
    }

    it('says what a key must be when one is neither "model" nor "model/version"', () => {
      assertErrorMentions(() => fromEnv('{"flaky/one": {"error_rate": 1}}'), ['FAULT_INJECTION', 'flaky/one', '"model/version"']);
    });
  });
});
