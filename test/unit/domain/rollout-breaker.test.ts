import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rollout, type RolloutSnapshot } from '../../../src/domain/rollout/rollout.js';
import { NO_HEADERS, aPlannedSpec, aRollout, aSpec, at, headers, noRandom, record, seededRandom } from '../support/rollout.mother.js';

/**
 * Rollout.versionFailing: what a rollout does when a version's circuit breaker opens. A canary is
 * rolled back, a shadow or a rule's version leaves routing, as when a version becomes unavailable;
 * the stable version is left alone (its breaker sheds load for a moment, and there is nothing safer
 * to route to).
 */
const BREAKER = 'its circuit breaker opened: too many of its requests failed';

function eventTypes(rollout: Rollout): string[] {
  return rollout.pullDomainEvents().map((event) => event.type);
}

/** The versions `count` random requests without headers are served by, and mirrored to. */
function routed(rollout: Rollout, count = 500): { served: Set<number | undefined>; mirrored: Set<number | undefined> } {
  const random = seededRandom(11);
  const served = new Set<number | undefined>();
  const mirrored = new Set<number | undefined>();
  for (let i = 0; i < count; i++) {
    const choice = rollout.route(NO_HEADERS, random);
    served.add(choice?.version);
    mirrored.add(choice?.shadow);
  }
  return { served, mirrored };
}

const saved = (rollout: Rollout) => JSON.parse(JSON.stringify(rollout.snapshot())) as RolloutSnapshot;

describe('Rollout.versionFailing (a circuit breaker opened)', () => {
  it('rolls a planned canary back at once, naming the breaker; every request goes to the stable version', () => {
    const rollout = aRollout(aPlannedSpec({ steps: [50, 100] }));
    record(rollout, 2, 3, { errors: 3 });
    const decision = rollout.versionFailing(2, BREAKER, at(2))!;
    assert.equal(decision.action, 'version_removed');
    assert.match(decision.reason, /version 2 became unavailable \(its circuit breaker opened: too many of its requests failed\) and was taken out of routing/);
    assert.equal(rollout.phase, 'ROLLED_BACK');
    assert.deepEqual(rollout.history.at(-1), decision);
    assert.equal(rollout.spec.canary, undefined);
    assert.equal(rollout.spec.plan, undefined);
    const events = rollout.pullDomainEvents();
    assert.deepEqual(events.map((e) => e.type), ['RolloutRolledBack']);
    assert.match((events[0] as { reason: string }).reason, /circuit breaker/);
    assert.deepEqual(routed(rollout).served, new Set([1]));
    assert.equal(rollout.evaluate(at(10_000)), undefined, 'nothing left to judge');
  });

  it('takes a canary without a plan out of routing; the rollout stays ACTIVE on the stable version', () => {
    const rollout = aRollout(aSpec({ canary: { version: 2, weight: 100 }, stickyHeader: 'x-user' }));
    assert.equal(rollout.versionFailing(2, BREAKER, at(1))?.action, 'version_removed');
    assert.equal(rollout.phase, 'ACTIVE');
    assert.deepEqual(eventTypes(rollout), []);
    assert.deepEqual(routed(rollout).served, new Set([1]));
    assert.equal(rollout.route(headers({ 'x-user': 'alice' }), noRandom)?.version, 1, 'sticky keys too');
  });

  it('takes a shadow out of routing and leaves the canary as it was', () => {
    const rollout = aRollout(aSpec({ canary: { version: 2, weight: 50 }, shadow: { version: 3, percent: 100 } }));
    assert.equal(rollout.versionFailing(3, BREAKER, at(1))?.action, 'version_removed');
    assert.equal(rollout.phase, 'ACTIVE');
    assert.equal(rollout.canaryWeight, 50);
    const { served, mirrored } = routed(rollout);
    assert.deepEqual(served, new Set([1, 2]));
    assert.deepEqual(mirrored, new Set([undefined]), 'nothing is mirrored any more');
  });

  it("drops the header rules naming the version; their requests go through the split", () => {
    const rollout = aRollout(
      aSpec({
        canary: { version: 2, weight: 0 },
        rules: [
          { header: 'x-env', equals: 'staging', version: 3 },
          { header: 'x-tier', equals: 'gold', version: 4 },
        ],
      }),
    );
    rollout.versionFailing(3, BREAKER, at(1));
    assert.deepEqual(rollout.spec.rules, [{ header: 'x-tier', equals: 'gold', version: 4 }]);
    assert.equal(rollout.route(headers({ 'x-env': 'staging' }), seededRandom())?.version, 1);
    assert.equal(rollout.route(headers({ 'x-tier': 'gold' }), noRandom)?.version, 4);
  });

  it('removes a version from every place it has: canary, shadow and rules', () => {
    const rollout = aRollout(aSpec({ canary: { version: 2, weight: 50 }, shadow: { version: 2, percent: 50 }, rules: [{ header: 'x-env', equals: 'staging', version: 2 }] }));
    rollout.versionFailing(2, BREAKER, at(1));
    assert.deepEqual(rollout.spec, { stable: 1, rules: [], canary: undefined, plan: undefined, shadow: undefined });
    assert.deepEqual(routed(rollout), { served: new Set([1]), mirrored: new Set([undefined]) });
    assert.equal(rollout.route(headers({ 'x-env': 'staging' }), seededRandom())?.version, 1);
  });

  describe('leaves the stable version alone', () => {
    it('under a plan: still ACTIVE at its step, the canary still served and judged, no decision, no event', () => {
      const rollout = aRollout(aPlannedSpec({ steps: [50, 100], minRequests: 10, minDwellSeconds: 0 }));
      const spec = rollout.spec;
      assert.equal(rollout.versionFailing(1, BREAKER, at(1)), undefined);
      assert.equal(rollout.phase, 'ACTIVE');
      assert.deepEqual(rollout.spec, spec);
      assert.equal(rollout.history.length, 1);
      assert.deepEqual(eventTypes(rollout), []);
      assert.deepEqual(routed(rollout).served, new Set([1, 2]));
      record(rollout, 2, 10);
      assert.equal(rollout.evaluate(at(2))?.action, 'advanced', 'the plan goes on');
    });

    it('unlike an unavailable stable version, which stops the rollout', () => {
      const failing = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      failing.versionFailing(1, BREAKER, at(1));
      const unavailable = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      unavailable.versionUnavailable(1, 'unloaded', at(1));
      assert.equal(failing.phase, 'ACTIVE');
      assert.equal(unavailable.phase, 'STOPPED');
    });

    it('after a promotion too: the promoted version is the stable one now', () => {
      const rollout = aRollout(aSpec({ canary: { version: 2, weight: 10 } }));
      rollout.promote(at(1));
      rollout.pullDomainEvents();
      assert.equal(rollout.versionFailing(2, BREAKER, at(2)), undefined);
      assert.equal(rollout.phase, 'PROMOTED');
      assert.deepEqual(routed(rollout).served, new Set([2]));
    });
  });

  it('ignores a version the rollout does not route to, and any once the rollout is over', () => {
    const rollout = aRollout(aSpec({ canary: { version: 2, weight: 10 }, shadow: { version: 3, percent: 10 } }));
    assert.equal(rollout.versionFailing(7, BREAKER, at(1)), undefined);
    assert.equal(rollout.history.length, 1);
    rollout.abort(at(2));
    rollout.pullDomainEvents();
    assert.equal(rollout.versionFailing(2, BREAKER, at(3)), undefined);
    assert.equal(rollout.versionFailing(3, BREAKER, at(3)), undefined);
    assert.equal(rollout.phase, 'ABORTED');
    assert.equal(rollout.history.length, 2);
    assert.deepEqual(eventTypes(rollout), []);
  });

  it('once the canary is rolled back, a second opening of its breaker changes nothing', () => {
    const rollout = aRollout(aPlannedSpec());
    rollout.versionFailing(2, BREAKER, at(1));
    rollout.pullDomainEvents();
    assert.equal(rollout.versionFailing(2, BREAKER, at(2)), undefined);
    assert.equal(rollout.history.length, 2);
    assert.deepEqual(eventTypes(rollout), []);
  });

  it('keeps the rollback across a save and a restore: the decision in the history, every request on the stable version', () => {
    const rollout = aRollout(aPlannedSpec({}, { stickyHeader: 'x-user' }));
    rollout.versionFailing(2, BREAKER, at(1));
    const restored = Rollout.restore(saved(rollout));
    assert.equal(restored.phase, 'ROLLED_BACK');
    assert.match(restored.history.at(-1)!.reason, /circuit breaker opened/);
    assert.deepEqual(routed(restored).served, new Set([1]));
  });
});
