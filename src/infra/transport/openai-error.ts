import { DomainError } from '../../domain/shared/domain-error.js';

/** OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`, what OpenAI clients parse. */
export interface OpenAiError {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

/** Routes that speak OpenAI's API (and its error shape). */
export function isOpenAiRoute(url: string | undefined): boolean {
  return url !== undefined && (url === '/v1' || url.startsWith('/v1/') || url.startsWith('/v1?'));
}

/** An error in OpenAI's shape, its `type` from the HTTP status as OpenAI's API names them. */
export function openAiErrorOf(status: number, message: string, error?: unknown): OpenAiError {
  const type =
    status === 401 ? 'authentication_error'
    : status === 403 ? 'permission_error'
    : status === 404 ? 'not_found_error'
    : status === 429 ? 'rate_limit_error'
    : status >= 500 ? 'server_error'
    : 'invalid_request_error';
  let code: string | null = null;
  let param: string | null = null;
  if (error instanceof DomainError) {
    if (error.code === 'REGISTRY.MODEL_NOT_FOUND') [code, param] = ['model_not_found', 'model'];
    else if (error.code === 'GENERATION.TOO_LONG') code = 'context_length_exceeded';
    else if (error.code === 'CLIENT.RATE_LIMITED') code = 'rate_limit_exceeded';
    else {
      const named = /^(?:parameter '|)([a-z_]+(?:\.[a-z_0-9]+)*)(?:'|:)/.exec(error.message);
      if (named && status === 400) param = named[1];
    }
  }
  return { error: { message, type, param, code } };
}
