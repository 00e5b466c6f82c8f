import { Body, Controller, Get, HttpCode, Param, Post, Put, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import { servedSignature } from '../../../domain/registry/model-config.js';
import { checkedModelName, checkedVersion } from '../../../domain/registry/model-name.js';
import type { Model } from '../../../domain/registry/model.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { RouteConfig } from '@nestjs/platform-fastify';
import { BODY_AFTER_GUARDS } from '../../../infra/http/request-body-parsers.js';
import { JsonBody, parseBody } from '../../../infra/http/request-body.js';
import { toConfigFile } from '../../../infra/model-repository/model-config.schema.js';
import { ModelRegistry } from '../model-registry.js';
import { AdminAuthGuard } from './admin-auth.guard.js';
import { ModelLifecycle } from './model-lifecycle.js';

const defaultVersionBody = z.strictObject({ version: z.union([z.string(), z.number().int()]).transform(String) });
const unloadBody = z.strictObject({ force: z.boolean().optional() }).optional();

/** Our admin API (described in GET /admin/openapi.json). Every call needs the admin token. */
@Controller('admin/models')
@UseGuards(AdminAuthGuard)
export class AdminModelsHttpController {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly lifecycle: ModelLifecycle,
  ) {}

  @Get()
  list() {
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
    const { force } = parseBody(unloadBody, body) ?? {};
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
      throw new DomainError('INFERENCE.INVALID_REQUEST', 'the body must be the model.onnx file (its bytes, as application/octet-stream)');
    }
    const { sha256 } = await this.lifecycle.uploadVersion(name, number, body);
    return { name, version: String(number), sha256, bytes: body.length };
  }

  /** The hot swap: answers once the new version serves. */
  @Put(':model/default-version')
  @RouteConfig({ [BODY_AFTER_GUARDS]: true })
  @HttpCode(200)
  async makeDefault(@Param('model') model: string, @Body(JsonBody) body: unknown) {
    const { version } = parseBody(defaultVersionBody, body);
    const swap = await this.lifecycle.makeDefault(checkedModelName(model), checkedVersion(version));
    return { name: model, previous_version: swap.from === undefined ? null : String(swap.from), version: String(swap.to) };
  }

  private describe(model: Model) {
    const serving = model.servingVersion();
    return {
      name: model.name,
      default_version: model.defaultVersion === undefined ? null : String(model.defaultVersion),
      serving_version: serving ? String(serving.version) : null,
      version_policy: serving?.config ? toConfigFile(serving.config).version_policy : null,
      config_override: model.configOverride !== undefined,
      versions: model.versions.map((v) => ({
        version: String(v.version),
        state: v.state,
        reason: v.reason,
        sha256: v.fileSha256 ?? null,
        loaded_at: v.loadedAt?.toISOString() ?? null,
        execution_provider: v.executionProvider ?? null,
        ...(v.config ? servedSignature(v.config) : { inputs: null, outputs: null }),
      })),
    };
  }
}
