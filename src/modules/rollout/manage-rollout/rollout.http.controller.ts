import { Body, Controller, Get, HttpCode, Param, Post, Put, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import { ROLLOUT_LIMITS, type Rollout, type RolloutSpec } from '../../../domain/rollout/rollout.js';
import { RouteConfig } from '@nestjs/platform-fastify';
import { BODY_AFTER_GUARDS } from '../../../infra/http/request-body-parsers.js';
import { JsonBody, parseBody } from '../../../infra/http/request-body.js';
import { AdminAuthGuard } from '../../registry/manage-model-versions/admin-auth.guard.js';
import { Rollouts } from '../rollouts.js';

const version = z.union([z.string().regex(/^[1-9]\d{0,15}$/, 'must be a positive integer'), z.number().int().positive()]).transform(Number);
const percent = z.number().min(0).max(100);
const headerName = z
  .string()
  .max(256, 'must be at most 256 characters')
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
  .transform((name) => name.toLowerCase());

/** The rollout document of PUT /admin/models/{m}/rollout; every part but `stable` is optional. */
const rolloutDocument = z.strictObject({
  stable: version,
  canary: z.strictObject({ version, weight: percent.default(0) }).optional(),
  sticky_header: headerName.optional(),
  rules: z
    .array(z.strictObject({ header: headerName, equals: z.string().max(ROLLOUT_LIMITS.maxRuleValueLength, `must be at most ${ROLLOUT_LIMITS.maxRuleValueLength} characters`), version }))
    .max(ROLLOUT_LIMITS.maxRules, `must have at most ${ROLLOUT_LIMITS.maxRules} rules (each is tried for every request that names no version)`)
    .default([]),
  shadow: z.strictObject({ version, percent }).optional(),
  plan: z
    .strictObject({
      steps: z.array(z.number().gt(0).max(100)).min(1).max(ROLLOUT_LIMITS.maxSteps, `must have at most ${ROLLOUT_LIMITS.maxSteps} steps`),
      min_requests: z.number().int().min(1).default(100),
      min_dwell_seconds: z.number().min(0).default(30),
      slo: z.strictObject({
        max_error_rate: z.number().min(0).max(1),
        max_p99_ratio: z.number().positive().optional(),
        max_divergence: z.number().min(0).optional(),
      }),
    })
    .optional(),
});

function toSpec(document: z.infer<typeof rolloutDocument>): RolloutSpec {
  const { plan } = document;
  return {
    stable: document.stable,
    canary: document.canary,
    stickyHeader: document.sticky_header,
    rules: document.rules,
    shadow: document.shadow,
    plan: plan && {
      steps: plan.steps,
      minRequests: plan.min_requests,
      minDwellSeconds: plan.min_dwell_seconds,
      slo: { maxErrorRate: plan.slo.max_error_rate, maxP99Ratio: plan.slo.max_p99_ratio, maxDivergence: plan.slo.max_divergence },
    },
  };
}

/** The rollout's state as the admin API shows it: the document's shape, plus phase, step, figures and history. */
function describeRollout(rollout: Rollout) {
  const { spec } = rollout;
  return {
    model: rollout.modelName,
    phase: rollout.phase,
    stable: String(spec.stable),
    canary: spec.canary && { version: String(spec.canary.version), weight: rollout.canaryWeight },
    sticky_header: spec.stickyHeader,
    rules: spec.rules.map((rule) => ({ header: rule.header, equals: rule.equals, version: String(rule.version) })),
    shadow: spec.shadow && { version: String(spec.shadow.version), percent: spec.shadow.percent },
    plan: spec.plan && {
      steps: spec.plan.steps,
      min_requests: spec.plan.minRequests,
      min_dwell_seconds: spec.plan.minDwellSeconds,
      slo: { max_error_rate: spec.plan.slo.maxErrorRate, max_p99_ratio: spec.plan.slo.maxP99Ratio, max_divergence: spec.plan.slo.maxDivergence },
    },
    step: rollout.step,
    figures: rollout.figures(),
    history: rollout.history,
  };
}

/** Our rollout admin API (in GET /admin/openapi.json), behind the admin token. */
@Controller('admin/models/:model/rollout')
@UseGuards(AdminAuthGuard)
export class RolloutHttpController {
  constructor(private readonly rollouts: Rollouts) {}

  /** Starts a rollout, replacing the model's current one. */
  @Put()
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async start(@Param('model') model: string, @Body(JsonBody) body: unknown) {
    return describeRollout(await this.rollouts.start(model, toSpec(parseBody(rolloutDocument, body))));
  }

  @Get()
  get(@Param('model') model: string) {
    return describeRollout(this.rollouts.get(model));
  }

  @Post('promote')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async promote(@Param('model') model: string) {
    return describeRollout(await this.rollouts.promote(model));
  }

  @Post('abort')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async abort(@Param('model') model: string) {
    return describeRollout(await this.rollouts.abort(model));
  }
}
