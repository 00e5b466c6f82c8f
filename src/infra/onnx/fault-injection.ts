import { Inject, Injectable, Optional } from '@nestjs/common';
import { z } from 'zod';
import { AppConfig } from '../config/app-config.js';

/** What the session worker does to one run: wait first, fail it, or die while running it. */
export interface WorkerFault {
  readonly delayMs?: number;
  readonly fail?: boolean;
  readonly crash?: boolean;
}

/**
 * The faults injected into one model (or one version): added latency on every run, a share of
 * runs that fail, a share of runs whose worker dies. Shares are dealt deterministically (a rate of
 * 0.25 fails runs 4, 8, 12...), so that a test knows which runs fail.
 */
export const faultPlanSchema = z.strictObject({
  latency_ms: z.number().int().min(0).max(600_000).optional(),
  error_rate: z.number().min(0).max(1).optional(),
  crash_rate: z.number().min(0).max(1).optional(),
});
export type FaultPlan = z.infer<typeof faultPlanSchema>;

const faultPlansSchema = z.record(z.string(), faultPlanSchema);
const TARGET = /^[^/]+(\/\d+)?$/;

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
    if (!config?.FAULT_INJECTION) return;
    let json: unknown;
    try {
      json = JSON.parse(config.FAULT_INJECTION);
    } catch (error) {
      throw new Error(`FAULT_INJECTION is not JSON: ${(error as Error).message}`);
    }
    const parsed = faultPlansSchema.safeParse(json);
    if (!parsed.success) {
      throw new Error(`FAULT_INJECTION: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    }
    // Checked here: zod reports a record key failing its pattern without the pattern's message.
    const badTarget = Object.keys(parsed.data).find((target) => !TARGET.test(target));
    if (badTarget !== undefined) throw new Error(`FAULT_INJECTION: ${JSON.stringify(badTarget)}: keys are "model" or "model/version"`);
    for (const [target, plan] of Object.entries(parsed.data)) this.set(target, plan);
  }

  /** Sets (or, with no plan, removes) the faults of "model" or "model/version"; a version's plan wins over its model's. */
  set(target: string, plan?: FaultPlan): void {
    if (plan) this.plans.set(target, { plan, errorCredit: 0, crashCredit: 0 });
    else this.plans.delete(target);
  }

  /** The fault for the next run of a runtime key ("model/version", or "model/version#generation" for a reload). */
  next(runtimeKey: string): WorkerFault | undefined {
    if (this.plans.size === 0) return undefined;
    const versionKey = runtimeKey.split('#')[0];
    const state = this.plans.get(versionKey) ?? this.plans.get(versionKey.slice(0, versionKey.lastIndexOf('/')));
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
