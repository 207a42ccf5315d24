import type { JobStatus, StoredStatus } from '../../src/jobs/states.js';
import type { JobStore } from '../../src/jobs/store.js';
import type { Job, JobError, NewJob } from '../../src/jobs/types.js';
import { openPostgresFixture } from './postgresRows.js';
import { postgresAvailable } from './postgres.js';
import { openSqliteFixture } from './sqliteRows.js';

/** Counts as the store keeps them, and as a full scan of the rows finds them: the two must always agree. */
export interface Counts {
  readonly byStatus: Record<JobStatus, number>;
  readonly live: number;
  readonly imageCounts: { pending: number; completed: number };
}

/** How `StoreRows.jobInState` leaves a job, beyond its state. */
export interface ArrangedFields {
  finishedAt?: number;
  leaseOwner?: string;
  leaseExpiresAt?: number;
  attempts?: number;
  lastError?: JobError;
  job?: Partial<NewJob>;
}

/** What tests arrange and inspect behind a store's back, the way an operator or a crashed process would leave rows. */
export interface StoreRows {
  /**
   * Inserts a job through the store, then puts it in `status` directly (a
   * full recount follows). A queued job due later is stored as the store
   * stores it: scheduled, out of the claim's reach until then.
   */
  jobInState(status: JobStatus, fields?: ArrangedFields): Promise<Job>;
  /** Gives a running job's lease to `owner` until `leaseExpiresAt`, as another instance that claimed it would hold it. */
  leaseTakenBy(id: number, owner: string, leaseExpiresAt: number): Promise<void>;
  /** The state stored in the job's row (`scheduled` included). */
  rowStatus(id: number): Promise<StoredStatus>;
  /** Counts read row by row. */
  countedThrough(): Promise<Counts>;
  /** Ends every job that has not ended as `status` at `finishedAt`, without moving counts. */
  endAllBehindTheBack(status: JobStatus, finishedAt: number): Promise<void>;
}

export interface StoreFixture {
  readonly store: JobStore;
  readonly rows: StoreRows;
  /** A second instance sharing the first one's database; closed after the test. */
  anotherInstance(instanceId?: string): Promise<JobStore>;
}

export interface StoreBackend {
  readonly name: JobStore['backend'];
  /** False when the backend's server cannot be reached here (the skip is announced once by the backend). */
  readonly available: boolean;
  /**
   * Whether signals and `exclusively` reach the other instances sharing the
   * store (PostgreSQL: NOTIFY, advisory locks). SQLite's instances share a
   * file, and hear only their own process's signals.
   */
  readonly acrossInstances: boolean;
  /** A store on a fresh, empty database, with its migrations applied; closed and removed after the test. */
  open(instanceId?: string): Promise<StoreFixture>;
}

/** The backends the store's contract tests run against. */
export const storeBackends: readonly StoreBackend[] = [
  { name: 'sqlite', available: true, acrossInstances: false, open: openSqliteFixture },
  { name: 'postgres', available: await postgresAvailable(), acrossInstances: true, open: openPostgresFixture },
];

/** Counts as the store reads them, in the shape of `StoreRows.countedThrough`. */
export async function keptCounts(store: JobStore): Promise<Counts> {
  return { byStatus: await store.countByStatus(), live: await store.liveCount(), imageCounts: await store.imageCounts() };
}
