// Rollouts and RolloutProgress on in-memory doubles: servers sharing one rollout store, one set of
// locks, a judge's lease and the figures each leaves, follow each other and judge once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Model } from '../../../src/domain/registry/model.js';
import type { RolloutSample } from '../../../src/domain/rollout/rollout.js';
import { RolloutFigures } from '../../../src/domain/rollout/rollout-figures.port.js';
import { StableVersionSwitch } from '../../../src/domain/rollout/stable-version-switch.port.js';
import { Leadership } from '../../../src/domain/shared/leadership.port.js';
import type { AppConfig } from '../../../src/infra/config/app-config.js';
import { InProcessEventBus } from '../../../src/infra/messaging/in-process-event-bus.js';
import { ModelRegistry } from '../../../src/modules/registry/model-registry.js';
import { RolloutProgress } from '../../../src/modules/rollout/progress-rollouts/rollout-progress.js';
import { Rollouts } from '../../../src/modules/rollout/rollouts.js';
import { InMemoryLocks } from '../support/in-memory-registry.js';
import { InMemoryRolloutRepository } from '../support/in-memory-stores.js';
import { aModelVersion } from '../support/model-version.mother.js';

/** What every replica left, by replica. */
class SharedFigures {
  readonly byReplica = new Map<string, RolloutSample>();
  of(replica: string): RolloutFigures {
    const shared = this.byReplica;
    return new (class extends RolloutFigures {
      async publish(_model: string, sample: RolloutSample) {
        shared.set(replica, sample);
      }
      async fromOthers() {
        return [...shared].filter(([id]) => id !== replica).map(([, sample]) => sample);
      }
    })();
  }
}

class FixedLeadership extends Leadership {
  constructor(private readonly leads: boolean) {
    super();
  }
  async lead(): Promise<boolean> {
    return this.leads;
  }
}

async function aReplica(id: string, store: InMemoryRolloutRepository, locks: InMemoryLocks, figures: SharedFigures, leads: boolean) {
  const registry = new ModelRegistry();
  registry.add(Model.discover('resnet', [aModelVersion().numbered(1).ready().build(), aModelVersion().numbered(2).ready().build()]));
  registry.finishLoading();
  const swaps: number[] = [];
  const stableSwitch = new (class extends StableVersionSwitch {
    async makeDefault(_model: string, version: number) {
      swaps.push(version);
    }
  })();
  const rollouts = new Rollouts(registry, store, stableSwitch, locks, new InProcessEventBus());
  await rollouts.onApplicationBootstrap();
  const progress = new RolloutProgress({ ROLLOUT_EVALUATION_INTERVAL_MS: 1000 } as AppConfig, rollouts, new FixedLeadership(leads), figures.of(id));
  return { rollouts, progress, swaps };
}

async function cluster() {
  const store = new InMemoryRolloutRepository();
  const locks = new InMemoryLocks();
  const figures = new SharedFigures();
  const judge = await aReplica('judge', store, locks, figures, true);
  const other = await aReplica('other', store, locks, figures, false);
  return { store, judge, other, figures };
}

const PLAN = { steps: [10, 50], minRequests: 30, minDwellSeconds: 0, slo: { maxErrorRate: 0.5 } };
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe('Rollouts across servers sharing a rollout store', () => {
  it("a rollout started on one server routes on the other (it follows the store's notification)", async () => {
    const { judge, other } = await cluster();
    await judge.rollouts.start('resnet', { stable: 1, canary: { version: 2, weight: 30 }, rules: [] });
    await settled();
    assert.equal(other.rollouts.get('resnet').canaryWeight, 30);
  });

  it('only the server holding the lease judges, on the figures of both; the other follows its decision', async () => {
    const { store, judge, other } = await cluster();
    await judge.rollouts.start('resnet', { stable: 1, canary: { version: 2, weight: 0 }, rules: [], plan: PLAN });
    await settled();
    for (const replica of [judge, other]) for (let i = 0; i < 20; i++) replica.rollouts.recordOutcome('resnet', 2, { ok: true, latencyMs: 1 });
    await other.progress.tick(new Date(Date.now() + 1000));
    assert.equal(store.rollouts.get('resnet')!.revision, 1, 'the other server left its figures, and decided nothing');
    await judge.progress.tick(new Date(Date.now() + 1000));
    assert.equal(store.rollouts.get('resnet')!.revision, 2, 'one decision: 40 requests together, 20 on each');
    assert.equal(store.rollouts.get('resnet')!.snapshot.step, 1);
    await settled();
    assert.equal(other.rollouts.get('resnet').step, 1, 'the other server follows');
  });

  it('a version both servers saw unloaded is taken out of routing on both at once, and saved once', async () => {
    const { store, judge, other } = await cluster();
    await judge.rollouts.start('resnet', { stable: 1, canary: { version: 2, weight: 50 }, rules: [] });
    await settled();
    await Promise.all([judge.rollouts.versionUnavailable('resnet', 2, 'unloaded'), other.rollouts.versionUnavailable('resnet', 2, 'unloaded')]);
    assert.equal(store.rollouts.get('resnet')!.revision, 2);
    for (const replica of [judge, other]) assert.equal(replica.rollouts.get('resnet').spec.canary, undefined);
  });

  it('a rollout that cannot be saved is not made: STATE_NOT_SAVED naming the model and why', async () => {
    const { store, judge } = await cluster();
    store.failing = true;
    await assert.rejects(judge.rollouts.start('resnet', { stable: 1, canary: { version: 2, weight: 30 }, rules: [] }), {
      code: 'REGISTRY.STATE_NOT_SAVED',
      message: /^the rollout of model 'resnet' was not made: the state of model 'resnet' could not be saved: ENOSPC/,
    });
    assert.equal(judge.rollouts.find('resnet'), undefined);
  });
});
