import type { IncomingMessage } from 'node:http';
import { optionsFromQuery } from '../../jobs/options.js';
import { HttpProblem } from '../problem.js';
import { DiskFullError } from '../../storage/diskFull.js';
import { releaseChunk } from '../../storage/releaseChunk.js';
import { TooLargeError, type TempStore } from '../../storage/tempStore.js';
import type { ReceivedUpload } from '../../jobs/upload.js';

/**
 * Streams a raw image body (`Content-Type: image/*` or
 * `application/octet-stream`) into the temp store under `key` as image 0.
 * Options come from the query string. A declared length over the limit is
 * refused before reading; an undeclared one is cut off as it streams.
 * With `digest`, the image is hashed as it streams (`sha256`).
 */
export async function receiveRawBody(
  req: IncomingMessage,
  query: Record<string, string | string[] | undefined>,
  store: TempStore,
  key: string,
  maxUploadBytes: number,
  landed: (bytes: number) => void,
  digest = false,
): Promise<ReceivedUpload> {
  const tooLarge = () => new HttpProblem(413, 'image_too_large_bytes', `The image is larger than ${maxUploadBytes} bytes (MAX_UPLOAD_BYTES).`);
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (declared > maxUploadBytes) throw tooLarge();

  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(query)) {
    if (Array.isArray(value)) throw new HttpProblem(400, 'invalid_options', `The query parameter "${name}" is given more than once.`);
    options[name] = value;
  }
  if (typeof options.destination === 'string') {
    try {
      options.destination = JSON.parse(options.destination);
    } catch {
      throw new HttpProblem(400, 'invalid_options', 'The destination query parameter must be JSON.');
    }
  }

  let written;
  try {
    // Nothing else reads the body: each chunk's memory goes as soon as it is written.
    written = await store.writeInput(key, 0, req, maxUploadBytes, (chunk) => {
      landed(chunk.length);
      releaseChunk(chunk);
    }, digest);
  } catch (error) {
    if (error instanceof TooLargeError) throw tooLarge();
    // Only an error of the body itself is the client's doing: a failed write (a full disk) is ours.
    if (error instanceof DiskFullError) throw error;
    if (req.aborted || (error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      throw new HttpProblem(400, 'upload_aborted', 'The client stopped sending the body.');
    }
    throw error;
  }
  if (written.bytes === 0) throw new HttpProblem(400, 'empty_body', 'The request body is empty: send the image bytes.');
  return { files: [{ index: 0, originalName: null, ...written }], options: optionsFromQuery(options) };
}
