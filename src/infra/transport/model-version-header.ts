/** The response header (HTTP) and metadata key (gRPC) naming the version that computed an answer, besides `model_version`. */
export const MODEL_VERSION_HEADER = 'x-model-version';
