import { Module } from '@nestjs/common';
import { RegistryModule } from '../registry/registry.module.js';
import { InferHttpController } from './run-inference/infer.http.controller.js';
import { RunInferenceHandler } from './run-inference/run-inference.handler.js';
import { ModelVersionSchedulers } from './model-version-schedulers.js';
import { GetModelStatisticsHandler } from './get-model-statistics/get-model-statistics.handler.js';
import { ModelStatisticsHttpController } from './get-model-statistics/model-statistics.http.controller.js';

/** The inference bounded context: requests in, tensors out, on the runtime behind the engine port. */
@Module({
  imports: [RegistryModule],
  controllers: [InferHttpController, ModelStatisticsHttpController],
  providers: [RunInferenceHandler, ModelVersionSchedulers, GetModelStatisticsHandler],
  exports: [ModelVersionSchedulers],
})
export class InferenceModule {}
