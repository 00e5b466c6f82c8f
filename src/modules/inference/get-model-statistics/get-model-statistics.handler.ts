import { Injectable } from '@nestjs/common';
import type { StatisticsSnapshot } from '../../../domain/inference/inference-statistics.js';
import type { ModelVersion } from '../../../domain/registry/model-version.js';
import { ModelCatalog } from '../../../domain/registry/model-catalog.port.js';
import { ModelVersionSchedulers } from '../model-version-schedulers.js';

export interface VersionStatistics {
  readonly name: string;
  readonly version: string;
  readonly statistics: StatisticsSnapshot;
}

/**
 * Triton's statistics extension: per READY model version, what its scheduler counted since the
 * version was loaded. Without a model: every model; without a version: every READY version.
 */
@Injectable()
export class GetModelStatisticsHandler {
  constructor(
    private readonly registry: ModelCatalog,
    private readonly schedulers: ModelVersionSchedulers,
  ) {}

  execute(modelName?: string, version?: number): VersionStatistics[] {
    let versions: ModelVersion[];
    if (modelName === undefined) versions = this.registry.all().flatMap((model) => model.readyVersions);
    else if (version === undefined) versions = this.registry.get(modelName).readyVersions;
    else versions = [this.registry.get(modelName).versionToServe(version)];
    return versions.map((v) => ({ name: v.modelName, version: String(v.version), statistics: this.schedulers.statisticsOf(v) }));
  }
}
