import { Body, Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import { ModelRepository } from '../../../domain/registry/model-repository.port.js';
import { checkedModelName } from '../../../domain/registry/model-name.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { parseBody } from '../../../infra/http/request-body.js';
import { ModelRegistry } from '../model-registry.js';
import { AdminAuthGuard } from './admin-auth.guard.js';
import { ModelLifecycle } from './model-lifecycle.js';

const indexBody = z.strictObject({ ready: z.boolean().optional() }).optional();
const loadBody = z
  .strictObject({ parameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional() })
  .optional();
const unloadBody = z
  .strictObject({ parameters: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional() })
  .optional();

/** Triton's model-repository extension, behind the admin token. */
@Controller('v2/repository')
@UseGuards(AdminAuthGuard)
export class RepositoryHttpController {
  constructor(
    private readonly repository: ModelRepository,
    private readonly registry: ModelRegistry,
    private readonly lifecycle: ModelLifecycle,
  ) {}

  @Post('index')
  @HttpCode(200)
  async index(@Body() body: unknown) {
    const { ready } = parseBody(indexBody, body) ?? {};
    const entries: { name: string; version?: string; state?: string; reason?: string }[] = [];
    for (const directory of await this.repository.scan()) {
      const model = this.registry.find(directory.name);
      const versions = model?.versions ?? [];
      if (versions.length === 0 && !ready) entries.push({ name: directory.name });
      for (const v of versions) {
        if (ready && !v.isReady) continue;
        entries.push({ name: directory.name, version: String(v.version), state: v.state, reason: v.reason });
      }
    }
    return entries;
  }

  @Post('models/:model/load')
  @HttpCode(200)
  async load(@Param('model') model: string, @Body() body: unknown) {
    const parameters = parseBody(loadBody, body)?.parameters ?? {};
    const config = parameters.config;
    if (config !== undefined && typeof config !== 'string') {
      throw new DomainError('INFERENCE.INVALID_REQUEST', 'parameters.config must be a string holding the model configuration in JSON');
    }
    const unknown = Object.keys(parameters).find((key) => key !== 'config');
    if (unknown) throw new DomainError('INFERENCE.INVALID_REQUEST', `parameters.${unknown} is not supported (only "config"; file uploads go to PUT /admin/models/{m}/versions/{v})`);
    await this.lifecycle.loadModel(checkedModelName(model), config);
  }

  @Post('models/:model/unload')
  @HttpCode(200)
  async unload(@Param('model') model: string, @Body() body: unknown) {
    parseBody(unloadBody, body);
    await this.lifecycle.unloadModel(checkedModelName(model));
  }
}
