import type { DomainEvent } from '../shared/aggregate-root.js';
import type { VersionFigures } from './version-window.js';

export type RolloutEvent = RolloutStarted | RolloutStepAdvanced | RolloutPromoted | RolloutRolledBack;

interface RolloutStarted extends DomainEvent {
  readonly type: 'RolloutStarted';
  readonly modelName: string;
  readonly stable: number;
  readonly canary?: number;
  readonly weight: number;
}

interface RolloutStepAdvanced extends DomainEvent {
  readonly type: 'RolloutStepAdvanced';
  readonly modelName: string;
  readonly step: number;
  readonly weight: number;
}

/** The canary became the stable version; the model's default version follows it. */
interface RolloutPromoted extends DomainEvent {
  readonly type: 'RolloutPromoted';
  readonly modelName: string;
  readonly from: number;
  readonly to: number;
}

/** Every request returns to the stable version: by the SLO guard (with the figures that breached it) or an operator. */
interface RolloutRolledBack extends DomainEvent {
  readonly type: 'RolloutRolledBack';
  readonly modelName: string;
  readonly stable: number;
  readonly reason: string;
  readonly figures: readonly VersionFigures[];
}
