import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import { HttpProblem } from '../problem.js';
import { releaseChunk } from '../../storage/releaseChunk.js';
import { TooLargeError, type TempStore } from '../../storage/tempStore.js';
import type { ReceivedFile, ReceivedUpload } from '../../jobs/upload.js';
import { cleanFilename } from './filename.js';

export interface MultipartLimits {
  readonly maxUploadBytes: number;
  readonly maxImagesPerJob: number;
}

/** Size cap of the `options` field: JSON options are small. */
const MAX_OPTIONS_BYTES = 64 * 1024;

/**
 * Frees the request's chunks as soon as nothing holds them (see
 * `releaseChunk`). busboy hands file bytes on as views into the request's
 * chunks, in order. So once a file's writer has written a view into request
 * chunk j and every earlier file's writer has finished, nothing views a chunk
 * before j: busboy has parsed past them (it copies what it keeps), this file's
 * earlier bytes and every earlier file are written, later parts come after.
 * Chunks busboy has not parsed yet are never released. This leans on how
 * busboy 1.6 hands data on (package.json pins it exactly); test/api.test.ts
 * checks every stored byte.
 */
function chunkReleaser(req: IncomingMessage) {
  const arrived = new Map<number, WeakRef<Buffer>>();
  const arrivalOf = new WeakMap<ArrayBufferLike, number>();
  let count = 0;
  let releasedBelow = 0;
  const finished = new Set<number>();
  let allFinishedBelow = 0;
  // Registered before the request is piped to busboy, so it sees each chunk first.
  req.on('data', (chunk: Buffer) => {
    arrivalOf.set(chunk.buffer, count);
    arrived.set(count, new WeakRef(chunk));
    count += 1;
  });
  return {
    /** File `file`'s writer has written `view` to disk. */
    written(file: number, view: Buffer): void {
      const chunk = arrivalOf.get(view.buffer);
      if (chunk === undefined || file > allFinishedBelow) return; // a copy busboy made, or an earlier file still writing
      for (; releasedBelow < chunk; releasedBelow += 1) {
        const ref = arrived.get(releasedBelow);
        arrived.delete(releasedBelow);
        const dead = ref?.deref();
        if (dead !== undefined) releaseChunk(dead);
      }
    },
    /** File `file`'s writer has ended, well or not. */
    finished(file: number): void {
      finished.add(file);
      while (finished.has(allFinishedBelow)) allFinishedBelow += 1;
    },
  };
}

/**
 * Streams a `multipart/form-data` body into the temp store under `key`:
 * files of field `images` in order, and an optional `options` JSON field.
 * Every limit is enforced while the bytes arrive. It rejects only once every
 * writer it began has stopped writing, so the caller may remove the files.
 * With `digest`, each file is hashed as it streams (`sha256`).
 */
export function receiveMultipart(
  req: IncomingMessage,
  store: TempStore,
  key: string,
  limits: MultipartLimits,
  landed: (bytes: number) => void,
  digest = false,
): Promise<ReceivedUpload> {
  return new Promise<ReceivedUpload>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        // Keep the filename as the client sent it: it is metadata, never a path.
        preservePath: true,
        // Clients (curl, browsers) send a filename's UTF-8 bytes as they are; busboy would read them as Latin-1.
        // An RFC 5987 `filename*` names its own charset and is decoded by it.
        defParamCharset: 'utf8',
        limits: {
          // One byte past the limit, so the store sees the excess and says 413.
          fileSize: limits.maxUploadBytes + 1,
          files: limits.maxImagesPerJob,
          fields: 1,
          fieldSize: MAX_OPTIONS_BYTES,
          parts: limits.maxImagesPerJob + 1,
          headerPairs: 20,
        },
      });
    } catch (error) {
      reject(new HttpProblem(400, 'malformed_multipart', `The multipart body cannot be read: ${(error as Error).message}.`));
      return;
    }

    const files: ReceivedFile[] = [];
    const writes: Promise<unknown>[] = [];
    /** File streams still being written: cut off from the body by a failure, they would never end. */
    const writing = new Set<Readable>();
    const chunks = chunkReleaser(req);
    let options: unknown = {};
    let failed = false;

    const fail = (problem: unknown): void => {
      if (failed) return;
      failed = true;
      req.unpipe(parser);
      req.resume(); // drain what the client still sends; the response goes out at once
      // End every writer still waiting for bytes, so no file is written to once this rejects.
      for (const stream of writing) stream.destroy(new Error('the upload was refused'));
      void Promise.allSettled(writes).then(() => reject(problem));
    };

    parser.on('file', (field, stream, info) => {
      if (failed) {
        stream.resume();
        return;
      }
      if (field === 'options') {
        stream.resume();
        fail(new HttpProblem(400, 'invalid_options', 'The options field came as a file: send it as a plain form field holding JSON (curl -F \'options={"quality":70}\', or -F \'options=<options.json\' to read it from a file; not -F options=@options.json).'));
        return;
      }
      if (field !== 'images') {
        stream.resume();
        fail(new HttpProblem(400, 'unexpected_field', `Unexpected file field "${field}": send images in the field "images".`));
        return;
      }
      const index = files.length;
      const file = { index, originalName: cleanFilename(info.filename), bytes: 0, head: Buffer.alloc(0), synced: Promise.resolve(), sha256: null };
      files.push(file);
      writing.add(stream);
      const written = store.writeInput(key, index, stream, limits.maxUploadBytes, (view) => {
        landed(view.length);
        chunks.written(index, view);
      }, digest);
      writes.push(
        written.finally(() => {
          writing.delete(stream);
          chunks.finished(index);
        }).then(
          (written) => {
            files[index] = { ...file, ...written };
          },
          (error: unknown) => {
            stream.resume();
            fail(
              error instanceof TooLargeError
                ? new HttpProblem(413, 'image_too_large_bytes', `Image ${index} is larger than ${limits.maxUploadBytes} bytes (MAX_UPLOAD_BYTES).`)
                : error,
            );
          },
        ),
      );
    });

    parser.on('field', (field, value, info) => {
      if (field !== 'options') {
        fail(new HttpProblem(400, 'unexpected_field', `Unexpected field "${field}": only "images" files and an "options" JSON field are read.`));
      } else if (info.valueTruncated) {
        fail(new HttpProblem(413, 'options_too_large', `The options field is larger than ${MAX_OPTIONS_BYTES} bytes.`));
      } else {
        try {
          options = JSON.parse(value);
        } catch {
          fail(new HttpProblem(400, 'invalid_options', 'The options field is not valid JSON.'));
        }
      }
    });

    parser.on('filesLimit', () =>
      fail(new HttpProblem(413, 'too_many_images', `A job takes at most ${limits.maxImagesPerJob} images (MAX_IMAGES_PER_JOB).`)),
    );
    parser.on('fieldsLimit', () => fail(new HttpProblem(400, 'unexpected_field', 'Only one options field is read.')));
    parser.on('partsLimit', () => fail(new HttpProblem(413, 'too_many_images', `A job takes at most ${limits.maxImagesPerJob} images (MAX_IMAGES_PER_JOB).`)));
    parser.on('error', (error: Error) => fail(new HttpProblem(400, 'malformed_multipart', `The multipart body cannot be read: ${error.message}.`)));
    req.on('aborted', () => fail(new HttpProblem(400, 'upload_aborted', 'The client stopped sending the body.')));

    parser.on('close', () => {
      Promise.all(writes).then(() => {
        if (failed) return;
        if (files.length === 0) {
          fail(new HttpProblem(400, 'no_images', 'Send at least one file in the multipart field "images".'));
          return;
        }
        resolve({ files, options });
      }, fail);
    });

    req.pipe(parser);
  });
}
