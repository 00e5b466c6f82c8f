import { Inject, Injectable, Optional } from '@nestjs/common';
import type { RuntimeKey } from '../../domain/shared/model-version-id.js';
import { AppConfig } from '../config/app-config.js';
import { parseFaultPlans, type FaultPlan } from '../config/fault-plan.js';

/** What the session worker does to one run: wait first, fail it, or die while running it. */
export interface WorkerFault {
  readonly delayMs?: number;
  readonly fail?: boolean;
  readonly crash?: boolean;
}

interface PlanState {
  readonly plan: FaultPlan;
  errorCredit: number;
  crashCredit: number;
}

/**
 * Fault injection for tests (FAULT_INJECTION, or `set` from a test holding the app): the engine
 * asks it before each run, and the worker acts on the answer, so that a crash is a real worker
 * death and a failure a real runtime error. Without a plan nothing changes.
 */
@Injectable()
export class FaultInjection {
  private readonly plans = new Map<string, PlanState>();

  constructor(@Optional() @Inject(AppConfig) config?: AppConfig) {
    // Already checked by loadAppConfig: a bad value never gets this far.
    if (!config?.FAULT_INJECTION) return;
    for (const [target, plan] of Object.entries(parseFaultPlans(config.FAULT_INJECTION))) this.set(target, plan);
  }

  /** Sets (or, with no plan, removes) the faults of "model" or "model/version"; a version's plan wins over its model's. */
  set(target: string, plan?: FaultPlan): void {
    if (plan) this.plans.set(target, { plan, errorCredit: 0, crashCredit: 0 });
    else this.plans.delete(target);
  }

  /** The wait before a version's load (or reload) starts its sessions: a slow load, held like a real one (ms; 0 without a plan). */
  loadDelayMs(key: RuntimeKey): number {
    return (this.plans.get(key.versionId.toString()) ?? this.plans.get(key.modelName))?.plan.load_latency_ms ?? 0;
  }

  /** The fault for the next run under a runtime key (a version's load or reload alike). */
  next(key: RuntimeKey): WorkerFault | undefined {
    if (this.plans.size === 0) return undefined;
    const state = this.plans.get(key.versionId.toString()) ?? this.plans.get(key.modelName);
    if (!state) return undefined;
    const { latency_ms, error_rate = 0, crash_rate = 0 } = state.plan;
    state.crashCredit += crash_rate;
    const crash = state.crashCredit >= 1 - 1e-9;
    if (crash) state.crashCredit -= 1;
    state.errorCredit += error_rate;
    const fail = !crash && state.errorCredit >= 1 - 1e-9;
    if (fail) state.errorCredit -= 1;
    return { delayMs: latency_ms, fail, crash };
  }
}
