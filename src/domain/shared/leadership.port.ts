/**
 * Port to the election of one server among the replicas for a duty that must be done once for the
 * cluster (judging rollouts): a lease that its holder renews and that expires when it dies.
 */
export abstract class Leadership {
  /** Takes or renews the lease of `duty`; true while this server holds it. */
  abstract lead(duty: string): Promise<boolean>;
}
