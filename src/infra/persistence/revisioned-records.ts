import type { z } from 'zod';

/** A record as stored: `{ revision, state }`, the state naming whose it is. */
export interface StoredRecord<T extends { readonly name: string }> {
  readonly state: T;
  /** 1 for the first write, +1 for each write after. */
  readonly revision: number;
}

/** A stored record that cannot be read back, set aside (see FileRecords.loadAll). */
export interface UnreadableRecord {
  readonly name: string | undefined;
  readonly keptAs: string;
  readonly reason: string;
}

/** What the records of one kind are, for the messages that name them. */
export interface RecordKind<T extends { readonly name: string }> {
  /** `{ revision, state }` as written; `state` checked by `schema`. */
  readonly schema: z.ZodType<{ revision: number; state: T }>;
  /** Only the fields of a state, so that what is written is what is read back. */
  readonly plain: (state: T) => T;
  /** How a file of this kind is named in messages, e.g. "model state file". */
  readonly fileWord: string;
  /** Where the directory is, in the server's configuration terms (never a path), e.g. "STATE_DIR". */
  readonly where: string;
  /** How the record of `name` is named in messages, e.g. "the state of model 'x'". */
  readonly describe: (name: string) => string;
}

/** A record changed on disk (seen by polling); `stored` undefined: removed. */
export interface RecordChange<T extends { readonly name: string }> {
  readonly name: string;
  readonly stored?: StoredRecord<T>;
}
