import { Module } from '@nestjs/common';
import { ModelRepository } from '../../domain/registry/model-repository.port.js';
import { AppConfig } from '../../infra/config/app-config.js';
import { FileSystemModelRepository } from '../../infra/model-repository/file-system-model-repository.js';
import { GetModelMetadataHandler } from './get-model-metadata/get-model-metadata.handler.js';
import { ModelMetadataHttpController } from './get-model-metadata/model-metadata.http.controller.js';
import { LoadModelRepositoryHandler } from './load-model-repository/load-model-repository.handler.js';
import { ModelRegistry } from './model-registry.js';

/** The model registry bounded context: which models and versions exist, their states and configs. */
@Module({
  controllers: [ModelMetadataHttpController],
  providers: [
    ModelRegistry,
    LoadModelRepositoryHandler,
    GetModelMetadataHandler,
    { provide: ModelRepository, inject: [AppConfig], useFactory: (config: AppConfig) => new FileSystemModelRepository(config.MODEL_REPOSITORY) },
  ],
  exports: [ModelRegistry, LoadModelRepositoryHandler],
})
export class RegistryModule {}
