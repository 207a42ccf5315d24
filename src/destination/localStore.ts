import fsp from 'node:fs/promises';
import path from 'node:path';
import { outputFormatInfo } from '../image/outputFormat.js';
import type { OutputFormat } from '../jobs/options.js';
import { diskFullOr } from '../storage/diskFull.js';
import { coalesce, fsyncPath } from '../storage/fsync.js';

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

export type LocalStore = ReturnType<typeof createLocalStore>;

/** The local output store at `outputDir`. */
export function createLocalStore(outputDir: string) {
  // The job folders' names: one fsync of the store serves every folder made before it starts.
  const syncStore = coalesce(() => fsyncPath(outputDir));

  return {
    /**
     * Moves a converted file into place: fsync'd, then renamed (atomic, so a
     * reader or a crash sees the old result or the whole new one, never a
     * part) and the names made durable. The temp store and the output store
     * are both in DATA_DIR, so this is a rename, not a copy. Returns the
     * location; `source` is gone afterwards.
     */
    async store(jobId: number, index: number, format: OutputFormat, source: string): Promise<string> {
      const target = localOutputPath(outputDir, jobId, index, format);
      const folder = path.dirname(target);
      try {
        await fsp.mkdir(folder, { recursive: true });
        await fsyncPath(source);
        await fsp.rename(source, target);
        // Each time, not only by the call that made the folder: that one may have failed or crashed
        // before its fsync, while another image of the job is recorded as delivered.
        await Promise.all([fsyncPath(folder), syncStore()]);
      } catch (error) {
        throw diskFullOr(error); // a folder or name the full volume has no room for
      }
      return localLocation(jobId, index, format);
    },
  };
}
