import { Body, Controller, Get, HttpCode, Param, Post, Put, UseGuards } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { BODY_AFTER_GUARDS } from '../../../infra/http/request-body-parsers.js';
import { JsonBody, parseBody } from '../../../infra/http/request-body.js';
import { AdminAuthGuard } from '../../registry/manage-model-versions/admin-auth.guard.js';
import { Rollouts } from '../rollouts.js';
import { toRolloutSpec, toRolloutView } from './rollout.mapper.js';
import { rolloutDocument } from './rollout.schemas.js';

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
    return toRolloutView(await this.rollouts.start(model, toRolloutSpec(parseBody(rolloutDocument, body, 'ADMIN.INVALID_REQUEST'))));
  }

  @Get()
  get(@Param('model') model: string) {
    return toRolloutView(this.rollouts.get(model));
  }

  @Post('promote')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async promote(@Param('model') model: string) {
    return toRolloutView(await this.rollouts.promote(model));
  }

  @Post('abort')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async abort(@Param('model') model: string) {
    return toRolloutView(await this.rollouts.abort(model));
  }
}
