import { Global, Module } from '@nestjs/common';
import { InferenceEngine } from '../../domain/inference/inference-engine.port.js';
import { FaultInjection } from './fault-injection.js';
import { OnnxRuntimeEngine } from './onnx-runtime-engine.js';

/**
 * Binds the engine port to the onnxruntime-node adapter, for every module (with the tests' fault
 * injection). Global: the registry loads versions into the engine, inference runs them, health and
 * metrics report its instances; swapping the runtime is this one binding.
 */
@Global()
@Module({
  providers: [{ provide: InferenceEngine, useClass: OnnxRuntimeEngine }, FaultInjection],
  exports: [InferenceEngine, FaultInjection],
})
export class OnnxRuntimeModule {}
