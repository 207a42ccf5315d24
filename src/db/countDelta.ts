import { jobStatuses, publicStatus, type JobStatus, type StoredStatus } from '../jobs/states.js';

/**
 * What one transaction changes in `job_counts`: jobs and images moved
 * between the states clients see. The repository's verbs add to it as they
 * write job rows and write it once, in one statement, before the
 * transaction commits; `scheduled` and `queued` rows count alike, so the
 * claim's promotion moves nothing.
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

  /** The statement's parameters: `queued`… for jobs, `queuedImages`… for images. */
  params(): Record<string, number> {
    const params: Record<string, number> = {};
    for (const status of jobStatuses) {
      params[status] = this.jobs[status];
      params[`${status}Images`] = this.images[status];
    }
    return params;
  }

  private add(status: JobStatus, jobs: number, images: number): void {
    this.jobs[status] += jobs;
    this.images[status] += images;
  }
}
