import { Body, Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import { RouteConfig } from '@nestjs/platform-fastify';
import { BODY_AFTER_GUARDS } from '../../../infra/http/request-body-parsers.js';
import { JsonBody, parseBody } from '../../../infra/http/request-body.js';
import { AdminAuthGuard } from './admin-auth.guard.js';
import { TritonRepository } from './triton-repository.js';

const parameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional();
const indexBody = z.strictObject({ ready: z.boolean().optional() }).optional();
const loadBody = z.strictObject({ parameters }).optional();
const unloadBody = z.strictObject({ parameters }).optional();

/** Triton's model-repository extension over HTTP, behind the admin token. */
@Controller('v2/repository')
@UseGuards(AdminAuthGuard)
export class RepositoryHttpController {
  constructor(private readonly repository: TritonRepository) {}

  @Post('index')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  index(@Body(JsonBody) body: unknown) {
    return this.repository.index(parseBody(indexBody, body, 'ADMIN.INVALID_REQUEST')?.ready ?? false);
  }

  @Post('models/:model/load')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async load(@Param('model') model: string, @Body(JsonBody) body: unknown) {
    await this.repository.load(model, parseBody(loadBody, body, 'ADMIN.INVALID_REQUEST')?.parameters ?? {});
  }

  @Post('models/:model/unload')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async unload(@Param('model') model: string, @Body(JsonBody) body: unknown) {
    parseBody(unloadBody, body, 'ADMIN.INVALID_REQUEST');
    await this.repository.unload(model);
  }
}
