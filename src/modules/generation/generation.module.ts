import { Module } from '@nestjs/common';
import { InferenceModule } from '../inference/inference.module.js';
import { RegistryModule } from '../registry/registry.module.js';
import { GenerateHttpController } from './generate-text/generate.http.controller.js';
import { OpenAiHttpController } from './generate-text/openai.http.controller.js';

/**
 * The generation bounded context: generative models served token by token (continuous batching),
 * over Triton's generate extension and the OpenAI-compatible API; gRPC ModelInfer and
 * ModelStreamInfer reach the same use case through the inference context.
 */
@Module({
  imports: [RegistryModule, InferenceModule],
  controllers: [GenerateHttpController, OpenAiHttpController],
})
export class GenerationModule {}
