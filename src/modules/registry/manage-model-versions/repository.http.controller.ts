import { Body, Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { BODY_AFTER_GUARDS } from '../../../infra/http/request-body-parsers.js';
import { JsonBody, parseBody } from '../../../infra/http/request-body.js';
import { AdminAuthGuard } from './admin-auth.guard.js';
import { repositoryIndexRequest, repositoryLoadRequest, repositoryUnloadRequest, type RepositoryIndexEntryView } from './admin-api.schemas.js';
import { TritonRepository } from './triton-repository.js';

/** Triton's model-repository extension over HTTP, behind the admin token. */
@Controller('v2/repository')
@UseGuards(AdminAuthGuard)
export class RepositoryHttpController {
  constructor(private readonly repository: TritonRepository) {}

  @Post('index')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  index(@Body(JsonBody) body: unknown): Promise<RepositoryIndexEntryView[]> {
    return this.repository.index(parseBody(repositoryIndexRequest, body, 'ADMIN.INVALID_REQUEST').ready ?? false);
  }

  @Post('models/:model/load')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async load(@Param('model') model: string, @Body(JsonBody) body: unknown) {
    await this.repository.load(model, parseBody(repositoryLoadRequest, body, 'ADMIN.INVALID_REQUEST').parameters ?? {});
  }

  @Post('models/:model/unload')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async unload(@Param('model') model: string, @Body(JsonBody) body: unknown) {
    parseBody(repositoryUnloadRequest, body, 'ADMIN.INVALID_REQUEST');
    await this.repository.unload(model);
  }
}
