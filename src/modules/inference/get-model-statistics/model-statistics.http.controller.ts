import { Controller, Get, Param } from '@nestjs/common';
import { requestedVersion } from '../../../domain/registry/model-name.js';
import { GetModelStatisticsHandler } from './get-model-statistics.handler.js';
import { toTritonStatistics } from './triton-statistics.js';

/** Triton's `GET /v2/models[/{m}[/versions/{v}]]/stats`, in Triton's JSON form. */
@Controller('v2/models')
export class ModelStatisticsHttpController {
  constructor(private readonly handler: GetModelStatisticsHandler) {}

  @Get('stats')
  all() {
    return toTritonStatistics(this.handler.execute());
  }

  @Get([':model/stats', ':model/versions/:version/stats'])
  ofModel(@Param('model') model: string, @Param('version') version?: string) {
    return toTritonStatistics(this.handler.execute(model, requestedVersion(version)));
  }
}
