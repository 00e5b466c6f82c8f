import { z } from 'zod';
import { ROLLOUT_LIMITS, type DecisionAction, type RolloutPhase } from '../../../domain/rollout/rollout.js';

/*
 * The bodies of the rollout admin API, described once: the controller parses requests with them,
 * the mapper's answers have their types, and GET /admin/openapi.json is generated from them.
 */

const version = z
  .union([z.string().regex(/^[1-9]\d{0,15}$/, 'must be a positive integer'), z.number().int().positive()])
  .transform(Number)
  .describe('A READY version of the model, as a string or an integer.');
const percent = z.number().min(0).max(100);
const headerName = z
  .string()
  .max(256, 'must be at most 256 characters')
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
  .transform((name) => name.toLowerCase());

/** The rollout document of PUT /admin/models/{m}/rollout; every part but `stable` is optional. */
export const rolloutDocument = z
  .strictObject({
    stable: version,
    canary: z
      .strictObject({ version, weight: percent.default(0).describe('Percent of the requests no rule matched (default 0; a plan sets it).') })
      .optional(),
    sticky_header: headerName.optional().describe('A request header (gRPC: metadata key) whose value keeps a client on one side of the split.'),
    rules: z
      .array(z.strictObject({ header: headerName, equals: z.string().max(ROLLOUT_LIMITS.maxRuleValueLength, `must be at most ${ROLLOUT_LIMITS.maxRuleValueLength} characters`), version }))
      .max(ROLLOUT_LIMITS.maxRules, `must have at most ${ROLLOUT_LIMITS.maxRules} rules (each is tried for every request that names no version)`)
      .default([])
      .describe('Tried in order for each request that names no version, before the split: the first whose header equals its value chooses the version.'),
    shadow: z.strictObject({ version, percent }).optional().describe('A share of the requests also run on this version, in the background; its answers are discarded.'),
    plan: z
      .strictObject({
        steps: z.array(z.number().gt(0).max(100)).min(1).max(ROLLOUT_LIMITS.maxSteps, `must have at most ${ROLLOUT_LIMITS.maxSteps} steps`).describe('Increasing canary weights.'),
        min_requests: z.number().int().min(1).default(100).describe('Canary requests a step needs before it is judged (default 100).'),
        min_dwell_seconds: z.number().min(0).default(30).describe('Time a step lasts at least (default 30).'),
        slo: z.strictObject({
          max_error_rate: z.number().min(0).max(1).describe('Server-side failures (runtime errors, timeouts) per canary request.'),
          max_p99_ratio: z.number().positive().optional().describe("Canary p99 latency over the stable version's, in the same step."),
          max_divergence: z.number().min(0).optional().describe("Mean largest element difference between the shadow's outputs and the client's answers."),
        }),
      })
      .optional(),
  })
  .describe('A rollout: the stable version, and optionally a canary split, header rules, a shadow and a progressive plan.');

export type RolloutDocument = z.output<typeof rolloutDocument>;

const ROLLOUT_PHASES = ['ACTIVE', 'PROMOTED', 'ROLLED_BACK', 'ABORTED', 'STOPPED'] as const satisfies readonly RolloutPhase[];
const DECISION_ACTIONS = ['started', 'advanced', 'promoted', 'rolled_back', 'aborted', 'version_removed', 'stopped'] as const satisfies readonly DecisionAction[];

/** A version's figures over the current step (or the step a decision judged). */
export const versionFiguresView = z
  .strictObject({
    version: z.number().int().positive(),
    requests: z.number().int().min(0),
    errors: z.number().int().min(0).describe('Server-side failures (runtime errors, timeouts); for a shadow, also answers that could not be compared.'),
    error_rate: z.number().min(0).max(1).describe('errors / requests (0 without requests).'),
    p99_ms: z.number().min(0).optional().describe('p99 latency in milliseconds; absent without requests.'),
    mean_divergence: z.number().min(0).optional().describe("Mean largest element difference between a shadow's outputs and the client's answers; absent unless mirrored."),
  })
  .describe('Per version, since the step began.');

/** The rollout as GET/PUT /admin/models/{m}/rollout answer it: the document's shape (versions as strings), plus phase, step, figures and history. */
export const rolloutView = z
  .strictObject({
    model: z.string(),
    phase: z.enum(ROLLOUT_PHASES),
    stable: z.string(),
    canary: z.strictObject({ version: z.string(), weight: z.number().min(0).max(100).describe("The current weight (the step's, with a plan; 0 once the rollout ended).") }).optional(),
    sticky_header: z.string().optional(),
    rules: z.array(z.strictObject({ header: z.string(), equals: z.string(), version: z.string() })),
    shadow: z.strictObject({ version: z.string(), percent: z.number().min(0).max(100) }).optional(),
    plan: z
      .strictObject({
        steps: z.array(z.number()),
        min_requests: z.number().int(),
        min_dwell_seconds: z.number(),
        slo: z.strictObject({ max_error_rate: z.number(), max_p99_ratio: z.number().optional(), max_divergence: z.number().optional() }),
      })
      .optional(),
    step: z.number().int().min(0).optional().describe('Index of the current step in plan.steps, while a plan is in progress.'),
    figures: z.array(versionFiguresView),
    history: z
      .array(
        z.strictObject({
          at: z.string().meta({ format: 'date-time' }),
          action: z.enum(DECISION_ACTIONS),
          step: z.number().int().optional(),
          weight: z.number().optional(),
          reason: z.string(),
          figures: z.array(versionFiguresView).optional().describe('The figures the decision was made on.'),
        }),
      )
      .describe('The decisions, oldest first (the last 100).'),
  })
  .describe('A rollout: its state, current step, the figures of the step and the history of decisions.');

export type RolloutView = z.output<typeof rolloutView>;
