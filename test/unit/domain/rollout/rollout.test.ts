import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ROLLOUT_LIMITS, Rollout, type RolloutSnapshot, type RolloutSpec } from '../../../../src/domain/rollout/rollout.js';
import type { RolloutEvent } from '../../../../src/domain/rollout/rollout-events.js';
import { bucketOfKey, inShare } from '../../../../src/domain/rollout/traffic-split.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';
import {
  NO_HEADERS,
  T0,
  aPlan,
  aPlannedSpec,
  aRollout,
  aSpec,
  anSlo,
  at,
  canaryShare,
  headers,
  noRandom,
  record,
  seededRandom,
} from '../../support/rollout.mother.js';

const KEYS = Array.from({ length: 2000 }, (_, i) => `client-${i}`);

/** The version each key is routed to (sticky header 'x-user'). */
function routesOf(rollout: Rollout, keys: readonly string[] = KEYS): Map<string, number | undefined> {
  return new Map(keys.map((key) => [key, rollout.route(headers({ 'x-user': key }), noRandom)?.version]));
}

function eventTypes(rollout: Rollout): string[] {
  return rollout.pullDomainEvents().map((event) => event.type);
}

/** Snapshot through JSON, as the state store keeps it. */
function saved(rollout: Rollout): RolloutSnapshot {
  return JSON.parse(JSON.stringify(rollout.snapshot())) as RolloutSnapshot;
}

describe('Rollout', () => {
  describe('start', () => {
    it('starts ACTIVE with a "started" decision and a RolloutStarted event', () => {
      const rollout = Rollout.start('resnet', aSpec({ canary: { version: 2, weight: 10 } }), () => true, T0);
      assert.equal(rollout.phase, 'ACTIVE');
      assert.equal(rollout.canaryWeight, 10);
      assert.equal(rollout.step, undefined, 'no plan, no step');
      assert.deepEqual(rollout.history, [{ at: T0.toISOString(), action: 'started', weight: 10, reason: 'stable 1, canary 2 at 10%' }]);
      assert.deepEqual(rollout.pullDomainEvents(), [{ type: 'RolloutStarted', occurredAt: T0, modelName: 'resnet', stable: 1, canary: 2, weight: 10 }]);
    });

    it("starts a plan at its first step, whatever the canary's declared weight", () => {
      const rollout = aRollout(aPlannedSpec({}, { canary: { version: 2, weight: 80 } }));
      assert.equal(rollout.step, 0);
      assert.equal(rollout.canaryWeight, 10);
      assert.deepEqual(rollout.history[0], { at: T0.toISOString(), action: 'started', step: 0, weight: 10, reason: 'stable 1, canary 2 at 10%, plan 10 -> 50 -> 100' });
    });

    const named: [string, RolloutSpec][] = [
      ['the stable version', aSpec({ stable: 3 })],
      ['the canary', aSpec({ canary: { version: 3, weight: 10 } })],
      ['the shadow', aSpec({ shadow: { version: 3, percent: 10 } })],
      ['a rule', aSpec({ rules: [{ header: 'x-env', equals: 'staging', version: 3 }] })],
    ];
    for (const [where, spec] of named) {
      it(`refuses a version that is not READY as ${where} (ROLLOUT.VERSION_NOT_READY)`, () => {
        assertDomainError(() => Rollout.start('resnet', spec, (version) => version !== 3, T0), 'ROLLOUT.VERSION_NOT_READY', 'version 3', "'resnet'", 'not READY');
      });
    }

    const invalid: [string, RolloutSpec, string][] = [
      ['a canary that is the stable version', aSpec({ canary: { version: 1, weight: 10 } }), 'canary.version 1 is the stable version'],
      ['a canary weight above 100', aSpec({ canary: { version: 2, weight: 150 } }), 'canary.weight 150'],
      ['a negative canary weight', aSpec({ canary: { version: 2, weight: -1 } }), 'canary.weight -1'],
      ['a canary weight that is not a number', aSpec({ canary: { version: 2, weight: NaN } }), 'canary.weight NaN'],
      ['a shadow that is the stable version', aSpec({ shadow: { version: 1, percent: 10 } }), 'shadow.version 1 is the stable version'],
      ['a shadow percent above 100', aSpec({ shadow: { version: 2, percent: 101 } }), 'shadow.percent 101'],
      ['a plan without a canary', aSpec({ plan: aPlan() }), 'plan needs a canary'],
      ['a plan without steps', aPlannedSpec({ steps: [] }), 'plan.steps is empty'],
      ['steps that repeat', aPlannedSpec({ steps: [10, 10, 100] }), 'plan.steps must increase, but 10 follows 10'],
      ['steps that decrease', aPlannedSpec({ steps: [50, 25] }), 'plan.steps must increase, but 25 follows 50'],
      ['a step above 100', aPlannedSpec({ steps: [50, 120] }), 'plan.steps[1] 120'],
      ['a step of 0', aPlannedSpec({ steps: [0, 50] }), 'plan.steps[0] 0'],
      [
        '100,000 header rules (each is tried for every request that names no version)',
        aSpec({ rules: Array.from({ length: 100_000 }, (_, i) => ({ header: 'x-user', equals: String(i), version: 1 })) }),
        `rules has 100000 entries, more than the ${ROLLOUT_LIMITS.maxRules} allowed`,
      ],
      ['a rule value of 2000 characters', aSpec({ rules: [{ header: 'x-user', equals: 'u'.repeat(2000), version: 1 }] }), 'rules[0].equals is longer than 1024'],
      [
        `${ROLLOUT_LIMITS.maxSteps + 1} plan steps`,
        aPlannedSpec({ steps: Array.from({ length: ROLLOUT_LIMITS.maxSteps + 1 }, (_, i) => i + 1) }),
        `plan.steps has ${ROLLOUT_LIMITS.maxSteps + 1} entries`,
      ],
    ];
    for (const [what, spec, mention] of invalid) {
      it(`refuses ${what} (ROLLOUT.INVALID_SPEC)`, () => {
        assertDomainError(() => Rollout.start('resnet', spec, () => true, T0), 'ROLLOUT.INVALID_SPEC', mention);
      });
    }

    it('accepts the bounds: weights of 0 and 100, a single step of 100', () => {
      assert.equal(aRollout(aSpec({ canary: { version: 2, weight: 0 }, shadow: { version: 3, percent: 100 } })).phase, 'ACTIVE');
      assert.equal(aRollout(aSpec({ canary: { version: 2, weight: 100 } })).canaryWeight, 100);
      assert.equal(aRollout(aPlannedSpec({ steps: [100] })).canaryWeight, 100);
    });
  });

  describe('route', () => {
    it('without a canary, rules or shadow, sends everything to the stable version', () => {
      const rollout = aRollout();
      const random = seededRandom();
      for (let i = 0; i < 100; i++) assert.deepEqual(rollout.route(NO_HEADERS, random), { version: 1 });
    });

    for (const weight of [10, 25, 50]) {
      it(`at ${weight}%, sends ${weight}% of 20,000 random requests to the canary, within 1%`, () => {
        const share = canaryShare(aRollout(aSpec({ canary: { version: 2, weight } })), 20_000);
        assert.ok(Math.abs(share - weight / 100) < 0.01, `the canary took ${(share * 100).toFixed(2)}%`);
      });
    }

    it('at 0% and 100%, sends nothing and everything to the canary', () => {
      assert.equal(canaryShare(aRollout(aSpec({ canary: { version: 2, weight: 0 } })), 2000), 0);
      assert.equal(canaryShare(aRollout(aSpec({ canary: { version: 2, weight: 100 } })), 2000), 1);
    });

    describe('a sticky key', () => {
      const sticky = (weight: number, extra: Partial<RolloutSpec> = {}) => aRollout(aSpec({ canary: { version: 2, weight }, stickyHeader: 'x-user', ...extra }));

      it('always gets the same version, without a random draw', () => {
        const rollout = sticky(30);
        const first = routesOf(rollout);
        for (let round = 0; round < 3; round++) assert.deepEqual(routesOf(rollout), first);
      });

      it('at 10%, puts between 9% and 11% of 20,000 keys on the canary', () => {
        const rollout = sticky(10);
        const keys = Array.from({ length: 20_000 }, (_, i) => `k${i}`);
        const share = [...routesOf(rollout, keys).values()].filter((v) => v === 2).length / keys.length;
        assert.ok(share > 0.09 && share < 0.11, `${(share * 100).toFixed(2)}% of the keys`);
      });

      it('stays on the canary when the weight grows: every key in at 10% is still in at 25%', () => {
        const at10 = routesOf(sticky(10));
        const at25 = routesOf(sticky(25));
        const canaryAt10 = KEYS.filter((key) => at10.get(key) === 2);
        assert.ok(canaryAt10.length > 0);
        for (const key of canaryAt10) assert.equal(at25.get(key), 2, `${key} left the canary when it grew`);
        assert.ok(KEYS.filter((key) => at25.get(key) === 2).length > canaryAt10.length, 'and more keys joined');
      });

      it("stays on the canary as a plan advances to its next step", () => {
        const rollout = aRollout(aPlannedSpec({ steps: [10, 25], minRequests: 1, minDwellSeconds: 0 }, { stickyHeader: 'x-user' }));
        const before = routesOf(rollout);
        record(rollout, 2, 1);
        assert.equal(rollout.evaluate(at(1))?.action, 'advanced');
        const after = routesOf(rollout);
        for (const key of KEYS) if (before.get(key) === 2) assert.equal(after.get(key), 2, `${key} left the canary`);
      });

      it('is the bucket of the key under the "canary" salt', () => {
        const rollout = sticky(40);
        for (const [key, version] of routesOf(rollout)) assert.equal(version, inShare(bucketOfKey(key, 'canary'), 40) ? 2 : 1, key);
      });

      it('is drawn at random for a request without the header', () => {
        const share = canaryShare(sticky(50), 4000);
        assert.ok(share > 0.45 && share < 0.55, `${share}`);
      });
    });

    describe('header rules', () => {
      const rules = aSpec({
        canary: { version: 2, weight: 100 },
        rules: [
          { header: 'x-tier', equals: 'gold', version: 3 },
          { header: 'x-env', equals: 'staging', version: 4 },
          { header: 'x-tier', equals: 'gold', version: 5 },
          { header: 'x-pin', equals: 'stable', version: 1 },
        ],
      });

      it('send a matching request to the rule\'s version, the first matching rule winning', () => {
        const rollout = aRollout(rules);
        assert.equal(rollout.route(headers({ 'x-tier': 'gold' }), noRandom)?.version, 3);
        assert.equal(rollout.route(headers({ 'x-env': 'staging' }), noRandom)?.version, 4);
        assert.equal(rollout.route(headers({ 'x-env': 'staging', 'x-tier': 'gold' }), noRandom)?.version, 3, 'the first rule in the list, not the first header');
      });

      it('beat the split: a rule can keep a request on the stable version with the canary at 100%', () => {
        const rollout = aRollout(rules);
        assert.equal(rollout.route(headers({ 'x-pin': 'stable' }), noRandom)?.version, 1);
        assert.equal(rollout.route(headers({ 'x-pin': 'stable', 'x-user': 'k' }), noRandom)?.version, 1);
      });

      it('match the exact value only; other requests go through the split', () => {
        const rollout = aRollout(rules);
        const random = seededRandom();
        for (const value of ['Gold', 'gold ', 'silver', '']) assert.equal(rollout.route(headers({ 'x-tier': value }), random)?.version, 2, JSON.stringify(value));
      });
    });

    describe('shadow', () => {
      it('mirrors the share asked for, within 1% of 20,000 draws', () => {
        const rollout = aRollout(aSpec({ shadow: { version: 3, percent: 30 } }));
        const random = seededRandom(5);
        let mirrored = 0;
        for (let i = 0; i < 20_000; i++) {
          const choice = rollout.route(NO_HEADERS, random)!;
          assert.equal(choice.version, 1, 'the shadow never serves');
          if (choice.shadow === 3) mirrored++;
        }
        assert.ok(Math.abs(mirrored / 20_000 - 0.3) < 0.01, `${mirrored} mirrored`);
      });

      it('picks requests independently of the canary side', () => {
        const rollout = aRollout(aSpec({ canary: { version: 2, weight: 50 }, shadow: { version: 3, percent: 50 } }));
        const random = seededRandom(9);
        const mirroredPerSide = new Map([[1, { total: 0, mirrored: 0 }], [2, { total: 0, mirrored: 0 }]]);
        for (let i = 0; i < 20_000; i++) {
          const choice = rollout.route(NO_HEADERS, random)!;
          const side = mirroredPerSide.get(choice.version)!;
          side.total++;
          if (choice.shadow !== undefined) side.mirrored++;
        }
        for (const [version, { total, mirrored }] of mirroredPerSide) {
          assert.ok(Math.abs(mirrored / total - 0.5) < 0.02, `version ${version}: ${mirrored} of ${total} mirrored`);
        }
      });

      it('picks sticky keys independently of the canary side, by the "shadow" salt', () => {
        const rollout = aRollout(aSpec({ canary: { version: 2, weight: 50 }, shadow: { version: 3, percent: 50 }, stickyHeader: 'x-user' }));
        let canaryMirrored = 0;
        let canary = 0;
        for (const key of KEYS) {
          const choice = rollout.route(headers({ 'x-user': key }), noRandom)!;
          assert.equal(choice.shadow !== undefined, inShare(bucketOfKey(key, 'shadow'), 50), key);
          if (choice.version === 2) {
            canary++;
            if (choice.shadow !== undefined) canaryMirrored++;
          }
        }
        assert.ok(Math.abs(canaryMirrored / canary - 0.5) < 0.05, `${canaryMirrored} of the canary's ${canary} keys mirrored`);
      });

      it('never mirrors a request to the version that serves it', () => {
        const rollout = aRollout(aSpec({ canary: { version: 2, weight: 50 }, shadow: { version: 2, percent: 100 }, rules: [{ header: 'x-env', equals: 'staging', version: 2 }] }));
        const random = seededRandom();
        let served = 0;
        for (let i = 0; i < 1000; i++) {
          const choice = rollout.route(NO_HEADERS, random)!;
          if (choice.version === 2) {
            served++;
            assert.deepEqual(choice, { version: 2 });
          } else assert.deepEqual(choice, { version: 1, shadow: 2 });
        }
        assert.ok(served > 0);
        assert.deepEqual(rollout.route(headers({ 'x-env': 'staging' }), random), { version: 2 });
      });

      it('at 0%, mirrors nothing', () => {
        const rollout = aRollout(aSpec({ shadow: { version: 3, percent: 0 } }));
        const random = seededRandom();
        for (let i = 0; i < 1000; i++) assert.equal(rollout.route(NO_HEADERS, random)?.shadow, undefined);
      });
    });
  });

  describe('recordOutcome and figures', () => {
    it('counts each watched version, and ignores the versions the rollout does not route to', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 10 }, shadow: { version: 3, percent: 10 } }));
      record(rollout, 1, 4, { errors: 1, latencyMs: 8 });
      record(rollout, 2, 2, { latencyMs: 12 });
      record(rollout, 3, 1, { divergence: 0.5 });
      record(rollout, 9, 5, { errors: 5 });
      assert.deepEqual(rollout.figures(), [
        { version: 1, requests: 4, errors: 1, errorRate: 0.25, p99Ms: 8, meanDivergence: undefined },
        { version: 2, requests: 2, errors: 0, errorRate: 0, p99Ms: 12, meanDivergence: undefined },
        { version: 3, requests: 1, errors: 0, errorRate: 0, p99Ms: 10, meanDivergence: 0.5 },
      ]);
    });
  });

  describe('evaluate', () => {
    it('decides nothing without a plan', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 10 }, shadow: { version: 3, percent: 10 } }));
      record(rollout, 2, 1000, { errors: 1000 });
      assert.equal(rollout.evaluate(at(3600)), undefined);
      assert.equal(rollout.phase, 'ACTIVE');
    });

    it('holds the step until the canary has min_requests', () => {
      const rollout = aRollout(aPlannedSpec({ minRequests: 100, minDwellSeconds: 60 }));
      record(rollout, 2, 99);
      record(rollout, 1, 1000);
      assert.equal(rollout.evaluate(at(3600)), undefined);
      assert.equal(rollout.step, 0);
      assert.equal(rollout.history.length, 1);
    });

    it('holds the step until min_dwell_seconds have passed', () => {
      const rollout = aRollout(aPlannedSpec({ minRequests: 100, minDwellSeconds: 60 }));
      record(rollout, 2, 500);
      assert.equal(rollout.evaluate(at(59.999)), undefined);
      assert.equal(rollout.step, 0);
      assert.equal(rollout.evaluate(at(60))?.action, 'advanced');
    });

    it('advances to the next step with the figures, and judges it on a new window from that moment', () => {
      const rollout = aRollout(aPlannedSpec({ minRequests: 100, minDwellSeconds: 60 }));
      record(rollout, 1, 900, { latencyMs: 5 });
      record(rollout, 2, 100, { latencyMs: 6 });
      const decision = rollout.evaluate(at(61));
      assert.deepEqual(decision, {
        at: at(61).toISOString(),
        action: 'advanced',
        step: 1,
        weight: 50,
        reason: 'step 0 (10%) held the SLO over 100 requests and 61 s',
        figures: [
          { version: 1, requests: 900, errors: 0, errorRate: 0, p99Ms: 5, meanDivergence: undefined },
          { version: 2, requests: 100, errors: 0, errorRate: 0, p99Ms: 6, meanDivergence: undefined },
        ],
      });
      assert.equal(rollout.step, 1);
      assert.equal(rollout.canaryWeight, 50);
      assert.deepEqual(rollout.history.at(-1), decision);
      assert.deepEqual(rollout.pullDomainEvents(), [{ type: 'RolloutStepAdvanced', occurredAt: at(61), modelName: 'resnet', step: 1, weight: 50 }]);
      assert.ok(rollout.figures().every((f) => f.requests === 0), 'the new step starts from zero');

      record(rollout, 2, 100);
      assert.equal(rollout.evaluate(at(61 + 59)), undefined, 'the dwell counts from the advance');
      assert.equal(rollout.evaluate(at(61 + 60))?.action, 'advanced');
      assert.equal(rollout.canaryWeight, 100);
    });

    it('promotes after the last step held: the canary becomes the stable version and takes every request', () => {
      const rollout = aRollout(aPlannedSpec({ steps: [10, 50], minRequests: 10, minDwellSeconds: 0 }, { stickyHeader: 'x-user', rules: [{ header: 'x-env', equals: 'staging', version: 3 }], shadow: { version: 3, percent: 50 } }));
      record(rollout, 2, 10);
      assert.equal(rollout.evaluate(at(1))?.action, 'advanced');
      record(rollout, 2, 10);
      const decision = rollout.evaluate(at(2))!;
      assert.equal(decision.action, 'promoted');
      assert.match(decision.reason, /the last step \(50%\) held the SLO: version 2 replaces 1 as the stable version/);
      assert.ok(decision.figures!.some((f) => f.version === 2 && f.requests === 10));
      assert.equal(rollout.phase, 'PROMOTED');
      assert.deepEqual(rollout.spec, { stable: 2, rules: [], stickyHeader: 'x-user' });
      assert.equal(rollout.step, undefined);
      assert.equal(rollout.canaryWeight, 0);
      assert.deepEqual(eventTypes(rollout), ['RolloutStepAdvanced', 'RolloutPromoted']);
      assert.deepEqual(rollout.history.map((d) => d.action), ['started', 'advanced', 'promoted']);
      const random = seededRandom();
      for (let i = 0; i < 200; i++) assert.deepEqual(rollout.route(headers({ 'x-env': 'staging' }), random), { version: 2 });
      assert.equal(rollout.evaluate(at(100)), undefined, 'nothing left to decide');
    });

    it('publishes the promotion with the versions it swaps', () => {
      const rollout = aRollout(aPlannedSpec({ steps: [100], minRequests: 1, minDwellSeconds: 0 }));
      record(rollout, 2, 1);
      rollout.evaluate(at(1));
      assert.deepEqual(rollout.pullDomainEvents(), [{ type: 'RolloutPromoted', occurredAt: at(1), modelName: 'resnet', from: 1, to: 2 }]);
    });

    describe('rolling back', () => {
      /** Asserts the rollback: phase, the decision's action and figures, the event, and routing back to stable. */
      function assertRolledBack(rollout: Rollout, decision: ReturnType<Rollout['evaluate']>, reason: RegExp): void {
        assert.ok(decision, 'a decision was taken');
        assert.equal(decision.action, 'rolled_back');
        assert.match(decision.reason, reason);
        assert.match(decision.reason, /every request goes to the stable version 1/);
        assert.equal(decision.step, 0);
        assert.equal(decision.weight, 10);
        assert.ok(decision.figures && decision.figures.length > 0, 'with the figures it was decided on');
        assert.equal(rollout.phase, 'ROLLED_BACK');
        assert.deepEqual(rollout.history.at(-1), decision);
        const events = rollout.pullDomainEvents();
        assert.deepEqual(events, [{ type: 'RolloutRolledBack', occurredAt: new Date(decision.at), modelName: 'resnet', stable: 1, reason: decision.reason, figures: decision.figures } as RolloutEvent]);
        const random = seededRandom();
        for (let i = 0; i < 500; i++) assert.deepEqual(rollout.route(NO_HEADERS, random), { version: 1 });
        assert.equal(rollout.canaryWeight, 0);
        assert.equal(rollout.step, undefined);
        assert.equal(rollout.evaluate(at(10_000)), undefined, 'a rolled back plan decides nothing more');
      }

      it('on an error rate above max_error_rate', () => {
        const rollout = aRollout(aPlannedSpec({ minRequests: 20, minDwellSeconds: 0, slo: anSlo({ maxErrorRate: 0.1 }) }));
        record(rollout, 1, 100);
        record(rollout, 2, 20, { errors: 3 });
        const decision = rollout.evaluate(at(1));
        // 3 failures > 0.1 x 20: the error budget of the step is spent as well.
        assertRolledBack(rollout, decision, /3 failed requests|error rate 0\.15 > 0\.1/);
        const canary = decision!.figures!.find((f) => f.version === 2)!;
        assert.deepEqual([canary.requests, canary.errors, canary.errorRate], [20, 3, 0.15]);
      });

      it('early, before min_requests and the dwell, once the error budget of the step is spent', () => {
        const rollout = aRollout(aPlannedSpec({ minRequests: 100, minDwellSeconds: 600, slo: anSlo({ maxErrorRate: 0.05 }) }));
        record(rollout, 2, 5, { errors: 5 });
        assert.equal(rollout.evaluate(at(1)), undefined, '5 failures are still within 0.05 x 100');
        record(rollout, 2, 1, { errors: 1 });
        const decision = rollout.evaluate(at(2));
        assertRolledBack(rollout, decision, /error budget of the step spent: 6 failed requests > 0\.05 x 100/);
        assert.deepEqual(decision!.figures!.find((f) => f.version === 2), { version: 2, requests: 6, errors: 6, errorRate: 1, p99Ms: 10, meanDivergence: undefined });
      });

      it('on a canary p99 above max_p99_ratio times the stable p99', () => {
        const rollout = aRollout(aPlannedSpec({ minRequests: 50, minDwellSeconds: 0, slo: anSlo({ maxP99Ratio: 2 }) }));
        record(rollout, 1, 200, { latencyMs: 10 });
        record(rollout, 2, 50, { latencyMs: 25 });
        const decision = rollout.evaluate(at(1));
        assertRolledBack(rollout, decision, /SLO breached at 10%: p99 25 ms is 2\.5x the stable version's 10 ms \(> 2x\)/);
        assert.deepEqual(decision!.figures!.map((f) => [f.version, f.p99Ms]), [[1, 10], [2, 25]]);
      });

      it('not on a canary p99 within the ratio', () => {
        const rollout = aRollout(aPlannedSpec({ minRequests: 50, minDwellSeconds: 0, slo: anSlo({ maxP99Ratio: 2 }) }));
        record(rollout, 1, 200, { latencyMs: 10 });
        record(rollout, 2, 50, { latencyMs: 20 });
        assert.equal(rollout.evaluate(at(1))?.action, 'advanced');
      });

      it("on a shadow's outputs diverging more than max_divergence", () => {
        const rollout = aRollout(aPlannedSpec({ minRequests: 10, minDwellSeconds: 0, slo: anSlo({ maxDivergence: 0.1 }) }, { shadow: { version: 3, percent: 100 } }));
        record(rollout, 2, 10);
        record(rollout, 3, 10, { divergence: 0.3 });
        const decision = rollout.evaluate(at(1));
        assertRolledBack(rollout, decision, /shadow version 3 diverges by 0\.3 on average \(> 0\.1\)/);
        assert.ok(Math.abs(decision!.figures!.find((f) => f.version === 3)!.meanDivergence! - 0.3) < 1e-9);
      });

      it(
        "not when the canary's error rate over the step is within max_error_rate, however many requests the dwell lets in",
        () => {
          const rollout = aRollout(aPlannedSpec({ minRequests: 100, minDwellSeconds: 60, slo: anSlo({ maxErrorRate: 0.05 }) }));
          record(rollout, 2, 1000, { errors: 10 });
          assert.equal(rollout.evaluate(at(30)), undefined, 'the dwell is not over, and 1% < 5%');
          assert.equal(rollout.evaluate(at(60))?.action, 'advanced');
        },
      );
    });
  });

  describe('operator transitions', () => {
    it('promote: the canary becomes the stable version, with the figures of the step', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      record(rollout, 2, 3);
      const decision = rollout.promote(at(5));
      assert.equal(decision.action, 'promoted');
      assert.match(decision.reason, /promoted by an operator: version 2 replaces 1 as the stable version/);
      assert.equal(decision.figures!.find((f) => f.version === 2)!.requests, 3);
      assert.equal(rollout.phase, 'PROMOTED');
      assert.equal(rollout.spec.stable, 2);
      assert.deepEqual(rollout.pullDomainEvents(), [{ type: 'RolloutPromoted', occurredAt: at(5), modelName: 'resnet', from: 1, to: 2 }]);
      assert.deepEqual(rollout.route(NO_HEADERS, seededRandom()), { version: 2 });
    });

    it('promote: refused without a canary, and once the rollout is over (ROLLOUT.INVALID_TRANSITION)', () => {
      assertDomainError(() => aRollout(aSpec({ shadow: { version: 2, percent: 10 } })).promote(at(1)), 'ROLLOUT.INVALID_TRANSITION', "'resnet'", 'no canary to promote', 'ACTIVE');
      const promoted = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      promoted.promote(at(1));
      assertDomainError(() => promoted.promote(at(2)), 'ROLLOUT.INVALID_TRANSITION', 'PROMOTED');
      const aborted = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      aborted.abort(at(1));
      assertDomainError(() => aborted.promote(at(2)), 'ROLLOUT.INVALID_TRANSITION', 'ABORTED');
      assert.equal(aborted.phase, 'ABORTED');
    });

    it('abort: every request goes to the stable version, published as a rollback', () => {
      const rollout = aRollout(aPlannedSpec({}, { shadow: { version: 3, percent: 100 }, rules: [{ header: 'x-env', equals: 'staging', version: 3 }] }));
      const decision = rollout.abort(at(7));
      assert.equal(decision.action, 'aborted');
      assert.equal(rollout.phase, 'ABORTED');
      const events = rollout.pullDomainEvents();
      assert.equal(events.length, 1);
      assert.equal(events[0].type, 'RolloutRolledBack');
      assert.match((events[0] as { reason: string }).reason, /aborted by an operator/);
      const random = seededRandom();
      for (let i = 0; i < 200; i++) assert.deepEqual(rollout.route(headers({ 'x-env': 'staging' }), random), { version: 1 });
      assert.equal(rollout.evaluate(at(10_000)), undefined);
    });

    it('abort: refused once the rollout is over (ROLLOUT.INVALID_TRANSITION)', () => {
      const aborted = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      aborted.abort(at(1));
      assertDomainError(() => aborted.abort(at(2)), 'ROLLOUT.INVALID_TRANSITION', 'ABORTED', 'not in progress');
      const promoted = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      promoted.promote(at(1));
      assertDomainError(() => promoted.abort(at(2)), 'ROLLOUT.INVALID_TRANSITION', 'PROMOTED');
      const rolledBack = aRollout(aPlannedSpec({ slo: anSlo({ maxErrorRate: 0 }) }));
      record(rolledBack, 2, 1, { errors: 1 });
      rolledBack.evaluate(at(1));
      assertDomainError(() => rolledBack.abort(at(2)), 'ROLLOUT.INVALID_TRANSITION', 'ROLLED_BACK');
    });
  });

  describe('versionUnavailable', () => {
    it('drops a canary at once; a plan ends rolled back', () => {
      const rollout = aRollout(aPlannedSpec({}, { stickyHeader: 'x-user' }));
      const decision = rollout.versionUnavailable(2, 'unloaded', at(3))!;
      assert.equal(decision.action, 'version_removed');
      assert.match(decision.reason, /version 2 became unavailable \(unloaded\) and was taken out of routing/);
      assert.equal(rollout.phase, 'ROLLED_BACK');
      assert.equal(rollout.spec.canary, undefined);
      assert.equal(rollout.spec.plan, undefined);
      assert.deepEqual(eventTypes(rollout), ['RolloutRolledBack']);
      for (const version of routesOf(rollout).values()) assert.equal(version, 1);
    });

    it('drops a canary without a plan: still ACTIVE, every request on the stable version', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 100 }, shadow: { version: 3, percent: 100 } }));
      rollout.versionUnavailable(2, 'failed', at(1));
      assert.equal(rollout.phase, 'ACTIVE');
      assert.deepEqual(eventTypes(rollout), []);
      const random = seededRandom();
      for (let i = 0; i < 200; i++) assert.deepEqual(rollout.route(NO_HEADERS, random), { version: 1, shadow: 3 });
    });

    it('drops a shadow: nothing is mirrored any more', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 50 }, shadow: { version: 3, percent: 100 } }));
      assert.equal(rollout.versionUnavailable(3, 'unloaded', at(1))?.action, 'version_removed');
      assert.equal(rollout.phase, 'ACTIVE');
      assert.equal(rollout.canaryWeight, 50);
      const random = seededRandom();
      for (let i = 0; i < 500; i++) assert.equal(rollout.route(NO_HEADERS, random)?.shadow, undefined);
      assert.ok(!rollout.figures().some((f) => f.version === 3), 'no longer watched');
    });

    it('drops the rules naming the version; their requests go through the split', () => {
      const rollout = aRollout(
        aSpec({
          canary: { version: 2, weight: 0 },
          rules: [
            { header: 'x-env', equals: 'staging', version: 3 },
            { header: 'x-env', equals: 'staging', version: 4 },
            { header: 'x-tier', equals: 'gold', version: 3 },
          ],
        }),
      );
      rollout.versionUnavailable(3, 'unloaded', at(1));
      assert.deepEqual(rollout.spec.rules, [{ header: 'x-env', equals: 'staging', version: 4 }]);
      assert.equal(rollout.route(headers({ 'x-env': 'staging' }), noRandom)?.version, 4, 'the next matching rule');
      assert.equal(rollout.route(headers({ 'x-tier': 'gold' }), seededRandom())?.version, 1);
    });

    it('losing the stable version stops the rollout: it routes nothing, the default version serves', () => {
      const rollout = aRollout(aPlannedSpec());
      const decision = rollout.versionUnavailable(1, 'failed: out of memory', at(1))!;
      assert.equal(decision.action, 'stopped');
      assert.match(decision.reason, /the stable version 1 became unavailable \(failed: out of memory\)/);
      assert.equal(rollout.phase, 'STOPPED');
      assert.equal(rollout.route(NO_HEADERS, seededRandom()), undefined);
      assert.equal(rollout.route(headers({ 'x-user': 'k' }), noRandom), undefined);
      assert.equal(rollout.versionUnavailable(2, 'unloaded', at(2)), undefined, 'a stopped rollout has nothing left to drop');
      assert.equal(rollout.versionUnavailable(1, 'unloaded', at(2)), undefined);
      assert.equal(rollout.evaluate(at(1000)), undefined);
      assertDomainError(() => rollout.abort(at(3)), 'ROLLOUT.INVALID_TRANSITION', 'STOPPED');
    });

    it('losing the stable version of a finished rollout stops it too', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      rollout.promote(at(1));
      assert.equal(rollout.versionUnavailable(1, 'unloaded', at(2)), undefined, 'version 1 is no longer routed to');
      assert.equal(rollout.versionUnavailable(2, 'unloaded', at(3))?.action, 'stopped');
      assert.equal(rollout.route(NO_HEADERS, seededRandom()), undefined);
    });

    it('ignores a version the rollout does not use, and any but the stable once the rollout is over', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      assert.equal(rollout.versionUnavailable(7, 'unloaded', at(1)), undefined);
      assert.equal(rollout.history.length, 1);
      rollout.abort(at(2));
      assert.equal(rollout.versionUnavailable(2, 'unloaded', at(3)), undefined);
      assert.equal(rollout.history.length, 2);
    });

    it('keeps the last 100 decisions', () => {
      // 60 rules (the most a rollout has is 64), removed one by one, twice over: 120 decisions after the start.
      const rules = Array.from({ length: 60 }, (_, i) => ({ header: 'x-v', equals: String(i + 2), version: i + 2 }));
      const first = aRollout(aSpec({ rules }));
      for (const rule of rules) first.versionUnavailable(rule.version, 'unloaded', at(rule.version));
      const rollout = Rollout.restore({ ...first.snapshot(), spec: aSpec({ rules: rules.map((rule) => ({ ...rule, version: rule.version + 60 })) }) });
      for (const rule of rules) rollout.versionUnavailable(rule.version + 60, 'unloaded', at(rule.version + 60));
      assert.equal(rollout.history.length, 100);
      assert.match(rollout.history[0].reason, /version 22 became unavailable/);
      assert.match(rollout.history.at(-1)!.reason, /version 121 became unavailable/);
    });
  });

  describe('snapshot and restore', () => {
    const fullSpec = aPlannedSpec(
      { steps: [10, 50, 100], minRequests: 10, minDwellSeconds: 60 },
      { stickyHeader: 'x-user', rules: [{ header: 'x-env', equals: 'staging', version: 3 }], shadow: { version: 3, percent: 20 } },
    );

    it('keeps the phase, the step, its start, the history and the routing', () => {
      const rollout = aRollout(fullSpec);
      record(rollout, 2, 10);
      rollout.evaluate(at(60));
      record(rollout, 2, 4);
      const snapshot = saved(rollout);
      assert.equal(snapshot.stepStartedAt, at(60).toISOString());

      const restored = Rollout.restore(snapshot);
      assert.equal(restored.modelName, 'resnet');
      assert.equal(restored.phase, 'ACTIVE');
      assert.equal(restored.step, 1);
      assert.equal(restored.canaryWeight, 50);
      assert.deepEqual(restored.spec, rollout.spec);
      assert.deepEqual(restored.history, saved(rollout).history, 'the history as it was saved');
      assert.deepEqual(restored.history.map((d) => d.action), ['started', 'advanced']);
      assert.deepEqual(routesOf(restored), routesOf(rollout));
      for (const key of KEYS.slice(0, 200)) {
        const h = headers({ 'x-user': key, 'x-env': key.endsWith('7') ? 'staging' : 'prod' });
        assert.deepEqual(restored.route(h, noRandom), rollout.route(h, noRandom), key);
      }
      assert.ok(restored.figures().every((f) => f.requests === 0), "the step's figures start again from zero");
      assert.deepEqual(restored.pullDomainEvents(), [], 'restoring is not an event');
    });

    it('goes on with the plan where it was: the dwell counts from the saved start of the step', () => {
      const rollout = aRollout(fullSpec);
      record(rollout, 2, 10);
      rollout.evaluate(at(60));
      const restored = Rollout.restore(saved(rollout));
      record(restored, 2, 10);
      assert.equal(restored.evaluate(at(119)), undefined);
      assert.deepEqual(restored.evaluate(at(120))?.step, 2);
      assert.equal(restored.canaryWeight, 100);
      assert.deepEqual(restored.history.map((d) => d.action), ['started', 'advanced', 'advanced']);
    });

    for (const phase of ['ROLLED_BACK', 'ABORTED', 'PROMOTED', 'STOPPED'] as const) {
      it(`keeps a ${phase} rollout ${phase} and routes as it did`, () => {
        const rollout = aRollout(fullSpec);
        if (phase === 'ROLLED_BACK') rollout.versionUnavailable(2, 'unloaded', at(1));
        if (phase === 'ABORTED') rollout.abort(at(1));
        if (phase === 'PROMOTED') rollout.promote(at(1));
        if (phase === 'STOPPED') rollout.versionUnavailable(1, 'unloaded', at(1));
        const restored = Rollout.restore(saved(rollout));
        assert.equal(restored.phase, phase);
        assert.deepEqual(restored.history, saved(rollout).history, 'the history as it was saved');
        assert.deepEqual(routesOf(restored), routesOf(rollout));
        assert.equal(restored.evaluate(at(10_000)), undefined);
      });
    }

    const valid = (): RolloutSnapshot => saved(aRollout(fullSpec));
    const garbage: [string, () => unknown][] = [
      ['an empty object', () => ({})],
      ['no spec', () => ({ ...valid(), spec: undefined })],
      ['a stable version that is not an integer', () => ({ ...valid(), spec: { ...valid().spec, stable: '1' } })],
      ['rules that are not a list', () => ({ ...valid(), spec: { ...valid().spec, rules: 'none' } })],
      ['an unknown phase', () => ({ ...valid(), phase: 'PAUSED' })],
      ['a step past the plan', () => ({ ...valid(), step: 3 })],
      ['a negative step', () => ({ ...valid(), step: -1 })],
      ['a fractional step', () => ({ ...valid(), step: 0.5 })],
      ['a history that is not a list', () => ({ ...valid(), history: {} })],
      ['a spec no longer valid (canary is the stable version)', () => ({ ...valid(), spec: { ...valid().spec, canary: { version: 1, weight: 10 } } })],
      ['plan steps that do not increase', () => ({ ...valid(), spec: { ...valid().spec, plan: { ...valid().spec.plan, steps: [50, 10] } } })],
    ];
    for (const [what, snapshot] of garbage) {
      it(`refuses ${what} (ROLLOUT.INVALID_SPEC)`, () => {
        assertDomainError(() => Rollout.restore(snapshot() as RolloutSnapshot), 'ROLLOUT.INVALID_SPEC');
      });
    }

    it(
      'refuses a step start that is not a date (ROLLOUT.INVALID_SPEC)',
      () => {
        assertDomainError(() => Rollout.restore({ ...valid(), stepStartedAt: 'yesterday' }), 'ROLLOUT.INVALID_SPEC');
      },
    );
  });
});
