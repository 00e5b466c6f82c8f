import { Global, Module } from '@nestjs/common';
import { InferenceEngine } from '../../domain/inference/inference-engine.port.js';
import { OnnxRuntimeEngine } from './onnx-runtime-engine.js';

/** Binds the engine port to the onnxruntime-node adapter, for every module. */
@Global()
@Module({
  providers: [{ provide: InferenceEngine, useClass: OnnxRuntimeEngine }],
  exports: [InferenceEngine],
})
export class OnnxRuntimeModule {}
