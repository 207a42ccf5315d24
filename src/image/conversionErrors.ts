import { PermanentError, TransientError, type JobFailure } from '../queue/errors.js';
import { DiskFullError } from '../storage/diskFull.js';

/** Longest sharp message kept: libvips repeats a decoder's complaint once per tile. */
const MAX_DETAIL = 300;

/**
 * sharp's message, first line only and without the given paths: a temp path
 * means nothing to a client and tells the world how the server is laid out.
 */
export function sharpDetail(error: unknown, ...paths: string[]): string {
  const message = error instanceof Error ? error.message : String(error);
  let line = message.split('\n', 1)[0] ?? message;
  for (const file of paths) line = line.split(file).join('the file');
  line = line.trim();
  return line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL)}…` : line;
}

/**
 * Turns a failed sharp conversion into a permanent or transient job failure.
 * sharp reports everything as a plain Error, so the class comes from its
 * message: limits, formats and damaged data never get better on a retry;
 * a timeout, memory or a failed write of the output may.
 */
export function conversionFailure(error: unknown, files: { input: string; output: string; index: number }): JobFailure {
  const detail = sharpDetail(error, files.input, files.output);
  const image = `image ${files.index}`;
  if (/exceeds pixel limit|too large for the/i.test(detail)) {
    return new PermanentError('image_too_large', `${image} is too large to convert (${detail}); send a smaller image`, { cause: error });
  }
  if (/unsupported image format/i.test(detail)) {
    return new PermanentError('image_unsupported', `${image} is not in a format the service decodes (${detail})`, { cause: error });
  }
  if (/^input file is missing/i.test(detail)) {
    return new PermanentError('input_missing', `${image}'s input file is gone from the temp store; submit the job again`, { cause: error });
  }
  if (/^timeout:/i.test(detail)) {
    return new TransientError('conversion_timeout', `${image}'s conversion ran out of the attempt's time (${detail})`, { cause: error });
  }
  // sharp names the output path in write errors; ENOSPC and EIO arrive as "system error: …" lines after it.
  const whole = error instanceof Error ? error.message : String(error);
  if (/no space left on device|disk quota exceeded/i.test(whole)) return new DiskFullError(error);
  if (/out of memory|for write|write error|write failed|input\/output error/i.test(whole)) {
    return new TransientError('conversion_io_failed', `${image} could not be written (${detail}); will retry`, { cause: error });
  }
  return new PermanentError('image_corrupt', `${image} cannot be decoded (${detail}); the file is truncated or damaged — export it again`, { cause: error });
}
