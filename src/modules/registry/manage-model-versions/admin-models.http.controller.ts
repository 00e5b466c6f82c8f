import { Body, Controller, Get, HttpCode, Param, Post, Put, UseGuards } from '@nestjs/common';
import { checkedModelName, checkedVersion } from '../../../domain/registry/model-name.js';
import type { Model } from '../../../domain/registry/model.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { RouteConfig } from '@nestjs/platform-fastify';
import { BODY_AFTER_GUARDS } from '../../../infra/http/request-body-parsers.js';
import { JsonBody, parseBody } from '../../../infra/http/request-body.js';
import { ModelRegistry } from '../model-registry.js';
import { AdminAuthGuard } from './admin-auth.guard.js';
import { defaultVersionRequest, unloadVersionRequest, type ModelListView, type ModelView } from './admin-api.schemas.js';
import { ModelLifecycle } from './model-lifecycle.js';
import { toDefaultVersionSwapView, toModelView, toUploadedVersionView } from './registry.mapper.js';

/** Our admin API (described in GET /admin/openapi.json). Every call needs the admin token. */
@Controller('admin/models')
@UseGuards(AdminAuthGuard)
export class AdminModelsHttpController {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly lifecycle: ModelLifecycle,
  ) {}

  @Get()
  list(): ModelListView {
    return { models: this.registry.all().map((model) => this.describe(model)) };
  }

  @Post(':model/versions/:version/load')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async load(@Param('model') model: string, @Param('version') version: string) {
    const loaded = await this.lifecycle.loadVersion(checkedModelName(model), checkedVersion(version));
    return this.describe(this.registry.get(loaded.modelName));
  }

  @Post(':model/versions/:version/unload')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async unload(@Param('model') model: string, @Param('version') version: string, @Body(JsonBody) body: unknown) {
    const { force } = parseBody(unloadVersionRequest, body, 'ADMIN.INVALID_REQUEST');
    await this.lifecycle.unloadVersion(checkedModelName(model), checkedVersion(version), force ?? false);
    return this.describe(this.registry.get(model));
  }

  /** Uploads a new version: the raw model.onnx bytes (whatever the content type), at most MAX_REQUEST_BYTES. */
  @Put(':model/versions/:version')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(201)
  async upload(@Param('model') model: string, @Param('version') version: string, @Body() body: unknown) {
    const name = checkedModelName(model);
    const number = checkedVersion(version);
    if (!Buffer.isBuffer(body) || body.length === 0) {
      throw new DomainError('ADMIN.INVALID_REQUEST', 'the body must be the model.onnx file (its bytes, as application/octet-stream)');
    }
    const { sha256 } = await this.lifecycle.uploadVersion(name, number, body);
    return toUploadedVersionView(name, number, sha256, body.length);
  }

  /** The hot swap: answers once the new version serves. */
  @Put(':model/default-version')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async makeDefault(@Param('model') model: string, @Body(JsonBody) body: unknown) {
    const { version } = parseBody(defaultVersionRequest, body, 'ADMIN.INVALID_REQUEST');
    const swap = await this.lifecycle.makeDefault(checkedModelName(model), checkedVersion(version));
    return toDefaultVersionSwapView(model, swap);
  }

  private describe(model: Model): ModelView {
    return toModelView(model, model.configOverride !== undefined);
  }
}
