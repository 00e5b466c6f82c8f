import type { RequestOutcome, RouteChoice } from './rollout.js';

/**
 * Port the inference use case asks which version serves a request that names none, and tells
 * how each routed request went (the figures a progressive rollout is judged on).
 */
export abstract class TrafficRouter {
  /** Undefined when the model has no rollout routing its traffic: the model's default version serves. */
  abstract route(modelName: string, header: (name: string) => string | undefined): RouteChoice | undefined;
  abstract recordOutcome(modelName: string, version: number, outcome: RequestOutcome): void;
}
