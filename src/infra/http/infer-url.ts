/** The infer routes' URL, `/v2/models/{model}[/versions/{version}]/infer`: the model's segment at 1, the version's at 2. */
export const INFER_URL = /^\/v2\/models\/([^/?]+)(?:\/versions\/([^/?]+))?\/infer(?:\?|$)/;

/** The infer routes' templates (the label of their metrics): without a version, and with one. */
export const INFER_ROUTE = '/v2/models/:model/infer';
export const VERSIONED_INFER_ROUTE = '/v2/models/:model/versions/:version/infer';

/** The model an infer URL names, decoded; undefined for a malformed escape (the router answers it). */
export function modelOfInferUrl(match: RegExpExecArray): string | undefined {
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return undefined;
  }
}
