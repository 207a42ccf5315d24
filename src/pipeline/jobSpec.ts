import type { Job } from '../jobs/types.js';
import { destinationSchema, jobOptionsSchema, type ConversionOptions, type Destination } from '../jobs/options.js';
import { PermanentError } from '../queue/errors.js';

const conversionSchema = jobOptionsSchema.pick({ format: true, quality: true, width: true, height: true, fit: true });

/** What an attempt needs from a job row, checked: a row the service did not write fails the job, not the process. */
export interface JobSpec {
  readonly options: ConversionOptions;
  readonly destination: Destination;
  /** The job's temp store folder. */
  readonly inputKey: string;
}

export function readJobSpec(job: Job): JobSpec {
  const options = conversionSchema.safeParse(job.options);
  if (!options.success) throw new PermanentError('options_invalid', `job ${job.id} has unusable conversion options: ${options.error.message}`);
  const destination = destinationSchema.safeParse(job.destination);
  if (!destination.success) throw new PermanentError('destination_invalid', `job ${job.id} has an unusable destination: ${destination.error.message}`);
  if (job.inputKey === null) {
    throw new PermanentError('input_missing', `job ${job.id}'s input files were already released; submit the images again`);
  }
  return { options: options.data, destination: destination.data, inputKey: job.inputKey };
}
