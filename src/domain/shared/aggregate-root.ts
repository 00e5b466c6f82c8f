/** Something that happened in the domain, named in the past tense; published after the state is saved. */
export interface DomainEvent {
  readonly type: string;
  readonly occurredAt: Date;
}

/** An aggregate records the events of its transitions; whoever saves it pulls and publishes them. */
export abstract class AggregateRoot<E extends DomainEvent = DomainEvent> {
  private events: E[] = [];

  protected record(event: E): void {
    this.events.push(event);
  }

  pullDomainEvents(): E[] {
    const events = this.events;
    this.events = [];
    return events;
  }
}
