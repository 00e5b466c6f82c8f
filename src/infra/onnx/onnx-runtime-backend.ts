import type { ModelBackend } from '../../domain/registry/model-backend.js';

/** ONNX Runtime as Triton names it: backend `onnxruntime`, platform `onnxruntime_onnx`, a version's file `model.onnx`. */
export const ONNX_RUNTIME_BACKEND: ModelBackend = {
  name: 'onnxruntime',
  platforms: ['onnxruntime_onnx'],
  modelFileName: 'model.onnx',
};
