import { Global, Module } from '@nestjs/common';
import { GenerationEngine } from '../../domain/generation/generation-engine.port.js';
import { InferenceEngine } from '../../domain/inference/inference-engine.port.js';
import { FaultInjection } from './fault-injection.js';
import { OnnxGenerationEngine } from './generation/onnx-generation-engine.js';
import { OnnxRuntimeEngine } from './onnx-runtime-engine.js';

/**
 * Binds the engine ports to the onnxruntime-node adapters, for every module (with the tests' fault
 * injection): InferenceEngine for request/response models, GenerationEngine for generative ones.
 */
@Global()
@Module({
  providers: [{ provide: InferenceEngine, useClass: OnnxRuntimeEngine }, { provide: GenerationEngine, useClass: OnnxGenerationEngine }, FaultInjection],
  exports: [InferenceEngine, GenerationEngine, FaultInjection],
})
export class OnnxRuntimeModule {}
