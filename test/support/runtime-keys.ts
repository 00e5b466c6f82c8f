import { ModelVersionId, RuntimeKey } from '../../src/domain/shared/model-version-id.js';

/**
 * A runtime key written as the server writes it: `model/version`, `model/version#generation` (a
 * reload), `model/version#upload`; a bare name is version 1 of that model. Tests only: the server
 * never reads a key back from text.
 */
export function runtimeKey(text: string): RuntimeKey {
  const match = /^(.+?)(?:\/(\d+))?(?:#(\d+|upload))?$/.exec(text);
  if (!match) throw new Error(`'${text}' is not a runtime key`);
  const id = ModelVersionId.of(match[1]!, Number(match[2] ?? 1));
  if (match[3] === undefined) return RuntimeKey.of(id);
  return match[3] === 'upload' ? RuntimeKey.uploadCheck(id) : RuntimeKey.reload(id, Number(match[3]));
}
