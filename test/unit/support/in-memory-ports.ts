import type { DomainEvent } from '../../../src/domain/shared/aggregate-root.js';
import { DomainEventBus } from '../../../src/domain/shared/domain-event-bus.port.js';
import { DomainError } from '../../../src/domain/shared/domain-error.js';
import type { RuntimeKey } from '../../../src/domain/shared/model-version-id.js';
import { RequestTracer, type OpenSpan, type TraceContext } from '../../../src/domain/shared/request-tracer.port.js';
import { TextTokenizers, type TextTokenizer } from '../../../src/domain/generation/text-tokenizer.port.js';
import { VersionTraffic } from '../../../src/domain/registry/version-traffic.port.js';
import { TrafficRouter } from '../../../src/domain/rollout/traffic-router.port.js';
import type { RequestOutcome, RouteChoice } from '../../../src/domain/rollout/rollout.js';
import type { InferenceMetrics } from '../../../src/modules/observability/metrics/inference-metrics.js';
import {
  checkSliceWithin,
  invalidRegion,
  SystemSharedMemory,
  type RegionSlice,
  type ReservedOutputs,
  type SharedMemoryRegionStatus,
} from '../../../src/domain/shared-memory/system-shared-memory.js';
import { encodeRawTensor } from '../../../src/infra/transport/raw-tensor.codec.js';

/** The event bus in memory: what was published, in order, and subscribers called at once. */
export class RecordingEventBus extends DomainEventBus {
  readonly published: DomainEvent[] = [];
  private readonly handlers = new Map<string, Set<(event: DomainEvent) => void>>();

  publish(events: readonly DomainEvent[]): void {
    for (const event of events) {
      this.published.push(event);
      for (const handler of this.handlers.get(event.type) ?? []) handler(event);
    }
  }

  subscribe<E extends DomainEvent>(type: E['type'], handler: (event: E) => void): () => void {
    const set = this.handlers.get(type) ?? new Set();
    set.add(handler as (event: DomainEvent) => void);
    this.handlers.set(type, set);
    return () => set.delete(handler as (event: DomainEvent) => void);
  }

  /** The types of the events published so far. */
  types(): string[] {
    return this.published.map((event) => event.type);
  }
}

/** Versions' traffic with nothing in flight: a drain ends at once. The keys drained are kept (to tell which instances left service). */
export class IdleTraffic extends VersionTraffic {
  readonly drained: string[] = [];

  async drain(key: RuntimeKey): Promise<void> {
    this.drained.push(key.toString());
  }
}

/** A router with no rollout unless given one: `routes` by model; the outcomes it was told, by model. */
export class InMemoryTrafficRouter extends TrafficRouter {
  readonly routes = new Map<string, RouteChoice>();
  readonly outcomes: { modelName: string; version: number; outcome: RequestOutcome }[] = [];

  /** The header lookup of the last request routed. */
  lastHeader?: (name: string) => string | undefined;

  route(modelName: string, header: (name: string) => string | undefined): RouteChoice | undefined {
    this.lastHeader = header;
    return this.routes.get(modelName);
  }

  private readonly waiters: { version: number; resolve: (outcome: RequestOutcome) => void }[] = [];

  recordOutcome(modelName: string, version: number, outcome: RequestOutcome): void {
    this.outcomes.push({ modelName, version, outcome });
    for (const waiter of this.waiters.filter((w) => w.version === version)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(outcome);
    }
  }

  /** The first outcome counted for `version` (at once if there is one already). */
  outcomeOf(version: number): Promise<RequestOutcome> {
    const known = this.outcomes.find((entry) => entry.version === version);
    if (known) return Promise.resolve(known.outcome);
    return new Promise((resolve) => this.waiters.push({ version, resolve }));
  }
}

/** Tracing off: no request is traced. */
export class NoTracing extends RequestTracer {
  annotateRequest(): void {}
  recordingContext(): TraceContext | undefined {
    return undefined;
  }
  recordSpan(): void {}
  startLinkedRoot(): OpenSpan | undefined {
    return undefined;
  }
  startChild(): undefined {
    return undefined;
  }
  recordLinkedRoot(): void {}
}

/**
 * The metrics the application reports, kept as values (the Prometheus adapter is tested over its
 * endpoint): requests by outcome, breaker states and in-flight limits by version.
 */
export class RecordedMetrics {
  readonly succeeded = new Map<string, number>();
  readonly failed = new Map<string, number>();
  readonly breakers = new Map<string, string>();
  readonly limits = new Map<string, number>();

  requestSucceeded(model: string, version: number): void {
    this.count(this.succeeded, `${model}/${version}`);
  }
  requestFailed(model: string, version: number | undefined, error: unknown): void {
    this.count(this.failed, `${model}/${version ?? '?'} ${error instanceof DomainError ? error.code : 'error'}`);
  }
  executed(): void {}
  breakerState(model: string, version: number, state: string): void {
    this.breakers.set(`${model}/${version}`, state);
  }
  concurrencyLimitChanged(model: string, version: number, limit: number): void {
    this.limits.set(`${model}/${version}`, limit);
  }

  /** This double where the application takes the Prometheus adapter (its class is the DI token). */
  asInferenceMetrics(): InferenceMetrics {
    return this as unknown as InferenceMetrics;
  }

  private count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }
}

/** No generative model is served in these tests: no tokenizer is ever loaded. */
export class NoTokenizers extends TextTokenizers {
  async load(key: string): Promise<TextTokenizer> {
    throw new Error(`no tokenizer for '${key}' in these tests`);
  }
  get(): TextTokenizer | undefined {
    return undefined;
  }
  release(): void {}
}

/**
 * System shared memory in memory: regions are byte arrays registered by name (the key is ignored);
 * reserved outputs are written as raw bytes, and counted while held.
 */
export class InMemorySharedMemory extends SystemSharedMemory {
  readonly regions = new Map<string, Uint8Array>();
  /** Reservations not released yet. */
  held = 0;

  register(name: string, _key: string, offset: number, byteSize: number): void {
    this.regions.set(name, new Uint8Array(byteSize - offset));
  }

  unregister(name?: string): void {
    if (name === undefined) this.regions.clear();
    else this.regions.delete(name);
  }

  status(): SharedMemoryRegionStatus[] {
    return [...this.regions].map(([name, bytes]) => ({ name, key: name, offset: 0, byteSize: bytes.length }));
  }

  read(slice: RegionSlice, input: string): Uint8Array {
    const region = this.regionOf(slice, `input '${input}'`);
    return region.slice(slice.offset, slice.offset + slice.byteSize);
  }

  reserve(outputs: ReadonlyMap<string, RegionSlice>): ReservedOutputs {
    for (const [output, slice] of outputs) this.regionOf(slice, `output '${output}'`);
    this.held++;
    let released = false;
    return {
      write: (tensor) => {
        const slice = outputs.get(tensor.name)!;
        const bytes = encodeRawTensor(tensor);
        if (bytes.length > slice.byteSize) throw invalidRegion(`output '${tensor.name}' has ${bytes.length} bytes, more than the ${slice.byteSize} of its slice`);
        this.regionOf(slice, `output '${tensor.name}'`).set(bytes, slice.offset);
      },
      release: () => {
        if (!released) this.held--;
        released = true;
      },
    };
  }

  private regionOf(slice: RegionSlice, tensor: string): Uint8Array {
    const region = this.regions.get(slice.region);
    if (!region) throw new DomainError('SHARED_MEMORY.REGION_NOT_FOUND', `${tensor}: no shared memory region '${slice.region}'`);
    checkSliceWithin(slice, region.length, tensor);
    return region;
  }
}
