import { Controller, Get, HttpCode, Param } from '@nestjs/common';
import { toConfigFile } from '../../../infra/model-repository/model-config.schema.js';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { GetModelMetadataHandler } from './get-model-metadata.handler.js';

/** KServe V2 model metadata and readiness, and Triton's model-configuration extension. */
@Controller('v2/models/:model')
export class ModelMetadataHttpController {
  constructor(private readonly handler: GetModelMetadataHandler) {}

  @Get(['', 'versions/:version'])
  metadata(@Param('model') model: string, @Param('version') version?: string) {
    const metadata = this.handler.execute(model, requestedVersion(version));
    return {
      name: metadata.name,
      versions: metadata.versions,
      platform: metadata.platform,
      inputs: metadata.signature.inputs,
      outputs: metadata.signature.outputs,
    };
  }

  @Get(['ready', 'versions/:version/ready'])
  @HttpCode(200)
  ready(@Param('model') model: string, @Param('version') version?: string): void {
    const parsed = requestedVersion(version);
    if (!this.handler.isReady(model, parsed)) {
      const which = parsed === undefined ? `model '${model}'` : `version ${parsed} of model '${model}'`;
      throw new DomainError('REGISTRY.VERSION_NOT_READY', `${which} is not ready`);
    }
  }

  @Get(['config', 'versions/:version/config'])
  config(@Param('model') model: string, @Param('version') version?: string) {
    return toConfigFile(this.handler.execute(model, requestedVersion(version)).config);
  }
}
