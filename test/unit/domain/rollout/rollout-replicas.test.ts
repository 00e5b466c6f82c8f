// A rollout judged once for several replicas: on its own figures plus the samples of the others.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rollout } from '../../../../src/domain/rollout/rollout.js';
import { aPlannedSpec, aRollout, at, record } from '../../support/rollout.mother.js';

describe('Rollout judged on the figures of every replica', () => {
  it("advances on the requests every replica counted, none of which has the step's minimum alone", () => {
    const judge = aRollout(aPlannedSpec({ minRequests: 90, minDwellSeconds: 0 }));
    const [other1, other2] = [Rollout.restore(judge.snapshot()), Rollout.restore(judge.snapshot())];
    for (const rollout of [judge, other1!, other2!]) record(rollout, 2, 30);
    assert.equal(aCopy(judge).evaluate(at(1)), undefined, 'alone, 30 requests are not enough');
    const decision = judge.evaluate(at(1), [other1!.sample(), other2!.sample()]);
    assert.equal(decision?.action, 'advanced');
    assert.equal(decision?.figures?.find((f) => f.version === 2)?.requests, 90);
  });

  it("rolls back on errors another replica saw although the judge's own requests all succeeded", () => {
    const judge = aRollout(aPlannedSpec({ minRequests: 20, minDwellSeconds: 0 }));
    const other = Rollout.restore(judge.snapshot());
    record(judge, 2, 20);
    record(other, 2, 20, { errors: 10 });
    assert.equal(judge.evaluate(at(1), [other.sample()])?.action, 'rolled_back');
  });

  it('leaves out what a replica counted of another step (it had not followed the last decision yet)', () => {
    const judge = aRollout(aPlannedSpec({ minRequests: 20, minDwellSeconds: 0 }));
    const behind = Rollout.restore(judge.snapshot());
    record(judge, 2, 20);
    assert.equal(judge.evaluate(at(1))?.action, 'advanced');
    record(behind, 2, 20, { errors: 20 });
    record(judge, 2, 5);
    assert.equal(judge.evaluate(at(2), [behind.sample()]), undefined, "the other step's failures do not count, nor its requests");
  });
});

function aCopy(rollout: Rollout): Rollout {
  const copy = Rollout.restore(rollout.snapshot());
  for (const figures of rollout.figures()) record(copy, figures.version, figures.requests);
  return copy;
}
