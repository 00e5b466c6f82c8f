import type { DomainEvent } from '../shared/aggregate-root.js';

/** What the registry tells the other contexts (rollout subscribes to these). */
export type ModelEvent = ModelVersionLoaded | ModelVersionFailed | ModelVersionUnloaded | DefaultVersionChanged;

interface ModelVersionLoaded extends DomainEvent {
  readonly type: 'ModelVersionLoaded';
  readonly modelName: string;
  readonly version: number;
  readonly fileSha256: string;
}

export interface ModelVersionFailed extends DomainEvent {
  readonly type: 'ModelVersionFailed';
  readonly modelName: string;
  readonly version: number;
  readonly reason: string;
}

export interface ModelVersionUnloaded extends DomainEvent {
  readonly type: 'ModelVersionUnloaded';
  readonly modelName: string;
  readonly version: number;
}

/** The version serving requests that name none changed (undefined: none serves). */
interface DefaultVersionChanged extends DomainEvent {
  readonly type: 'DefaultVersionChanged';
  readonly modelName: string;
  readonly from?: number;
  readonly to?: number;
}
