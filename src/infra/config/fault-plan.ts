import { z } from 'zod';
import { schemaErrorMessage } from '../validation/schema-error-message.js';

/**
 * The faults injected into one model (or one version): added latency on every run, a share of
 * runs that fail, a share of runs whose worker dies, added latency on every load. Shares are dealt deterministically (a rate of
 * 0.25 fails runs 4, 8, 12...), so that a test knows which runs fail.
 */
const faultPlanSchema = z.strictObject({
  latency_ms: z.number().int().min(0).max(600_000).optional(),
  error_rate: z.number().min(0).max(1).optional(),
  crash_rate: z.number().min(0).max(1).optional(),
  load_latency_ms: z.number().int().min(0).max(600_000).optional(),
});
export type FaultPlan = z.infer<typeof faultPlanSchema>;

const faultPlansSchema = z.record(z.string(), faultPlanSchema);
const TARGET = /^[^/]+(\/\d+)?$/;

/** FAULT_INJECTION's text as plans by "model" or "model/version"; the error says what is wrong (without the variable's name). */
export function parseFaultPlans(text: string): Record<string, FaultPlan> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`not JSON: ${(error as Error).message}`);
  }
  const parsed = faultPlansSchema.safeParse(json);
  if (!parsed.success) throw new Error(schemaErrorMessage(parsed.error, { every: true }));
  // Checked here: zod reports a record key failing its pattern without the pattern's message.
  const badTarget = Object.keys(parsed.data).find((target) => !TARGET.test(target));
  if (badTarget !== undefined) throw new Error(`${JSON.stringify(badTarget)}: keys are "model" or "model/version"`);
  return parsed.data;
}
