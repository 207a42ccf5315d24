import { jobStatuses, publicStatus, type JobStatus, type StoredStatus } from '../jobs/states.js';

/** One state's move in `job_counts`: jobs and images added to it (or, negative, taken from it). */
export interface CountMove {
  readonly status: JobStatus;
  readonly jobs: number;
  readonly images: number;
}

/**
 * What one transaction changes in `job_counts`: jobs and images moved
 * between the states clients see. A store's verbs add to it as they write
 * job rows, and the store writes it before the transaction commits (SQLite:
 * one statement per state that moved; PostgreSQL: one statement into one
 * slot row); `scheduled` and `queued` rows count alike, so the claim's
 * promotion moves nothing.
 */
export class CountDelta {
  readonly jobs: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  readonly images: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };

  /** `jobs` jobs holding `images` images left `from` (null: inserted) for `to` (null: deleted). */
  move(from: StoredStatus | null, to: StoredStatus | null, jobs: number, images: number): void {
    if (from !== null) this.add(publicStatus(from), -jobs, -images);
    if (to !== null) this.add(publicStatus(to), jobs, images);
  }

  get empty(): boolean {
    return jobStatuses.every((status) => this.jobs[status] === 0 && this.images[status] === 0);
  }

  /**
   * The states whose counts moved, each with its change. A claim that refills the slots its completions free
   * moves two (queued and succeeded; running nets to zero), not five.
   */
  moves(): CountMove[] {
    return jobStatuses
      .filter((status) => this.jobs[status] !== 0 || this.images[status] !== 0)
      .map((status) => ({ status, jobs: this.jobs[status], images: this.images[status] }));
  }

  private add(status: JobStatus, jobs: number, images: number): void {
    this.jobs[status] += jobs;
    this.images[status] += images;
  }
}
