import type { ModelBackend } from '../../../domain/registry/model-backend.js';
import { GENERATIVE_BACKEND } from '../../../domain/registry/generative-model.js';
import { GENERATIVE_MODEL_FILE } from './generative-model-files.js';

/**
 * Generative (autoregressive decoder) models on ONNX Runtime, in Hugging Face Optimum's layout:
 * backend `onnx_generative`, the version's `model.onnx` with its tokenizer and config files beside it.
 */
export const ONNX_GENERATIVE_BACKEND: ModelBackend = {
  name: GENERATIVE_BACKEND,
  platforms: [GENERATIVE_BACKEND],
  modelFileName: GENERATIVE_MODEL_FILE,
};
