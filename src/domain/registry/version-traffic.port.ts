import type { RuntimeKey } from '../shared/model-version-id.js';

/**
 * Port to the requests a model version is serving. Lets the registry take a version out of
 * service without failing a request it had already accepted (the inference context implements it).
 */
export abstract class VersionTraffic {
  /** Accepts no more requests for `key`, and resolves once every accepted one has been answered. */
  abstract drain(key: RuntimeKey): Promise<void>;
}
