import type { DomainError } from '../shared/domain-error.js';
import type { Model } from './model.js';

/**
 * Port to the models this server knows, as other contexts read them (inference serves them, health
 * and metrics report them, rollouts route among their versions). The registry context implements it.
 */
export abstract class ModelCatalog {
  /** True until the repository's first load has finished. */
  abstract get isLoading(): boolean;
  /** Every model, by name. */
  abstract all(): Model[];
  abstract find(name: string): Model | undefined;
  /** The model, or REGISTRY.MODEL_NOT_FOUND. */
  abstract get(name: string): Model;
  /** The error for a model this server does not know, in Triton's words. */
  abstract notFound(name: string): DomainError;
  /** Why the server is not ready to serve (`strict`: unless every model that should serve is READY), or undefined when it is. */
  abstract notReadyReason(strict: boolean): string | undefined;
}
