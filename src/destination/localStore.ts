import fsp from 'node:fs/promises';
import path from 'node:path';
import { outputFormatInfo } from '../image/outputFormat.js';
import type { OutputFormat } from '../jobs/options.js';
import { fsyncPath } from '../storage/fsync.js';

/**
 * An image's result in the local output store, relative to the store:
 * `<jobId>/<index>.<ext>`. Fixed by job and image, so a repeated attempt
 * overwrites rather than duplicates; recorded as the image's `location`
 * (relative, so no server path leaks through the API).
 */
function localLocation(jobId: number, index: number, format: OutputFormat): string {
  return `${jobId}/${index}.${outputFormatInfo[format].extension}`;
}

/** The file holding an image's result in the local output store; `format` is the recorded output format. */
export function localOutputPath(outputDir: string, jobId: number, index: number, format: string): string {
  const known = Object.hasOwn(outputFormatInfo, format) ? (format as OutputFormat) : null;
  if (known === null) throw new Error(`not an output format: ${format}`);
  return path.join(outputDir, localLocation(jobId, index, known));
}

/**
 * Copies a converted file into the local output store: to a temporary name
 * first, fsync'd, then renamed into place and the folder fsync'd, so a reader
 * or a crash sees the old result or the whole new one, never a part.
 * Returns the location.
 */
export async function storeLocally(outputDir: string, jobId: number, index: number, format: OutputFormat, source: string): Promise<string> {
  const target = localOutputPath(outputDir, jobId, index, format);
  const folder = path.dirname(target);
  await fsp.mkdir(folder, { recursive: true });
  // A fixed temporary name: a crashed attempt's leftover is overwritten by the next one.
  const partial = `${target}.partial`;
  try {
    await fsp.copyFile(source, partial);
    await fsyncPath(partial);
    await fsp.rename(partial, target);
  } catch (error) {
    await fsp.rm(partial, { force: true });
    throw error;
  }
  await fsyncPath(folder);
  // The job's folder may be new: make its entry durable too.
  await fsyncPath(outputDir);
  return localLocation(jobId, index, format);
}
