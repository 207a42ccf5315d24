import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import { JobFailure, PermanentError, TransientError } from '../queue/errors.js';
import { DestinationNotAllowedError, type AddressPolicy } from './addressPolicy.js';

/**
 * A connection silent for this long is dropped (a transient failure).
 * Separate from the attempt's own timeout, which covers the whole job.
 */
const SOCKET_IDLE_TIMEOUT_MS = 60_000;

export interface Upload {
  readonly url: URL;
  readonly file: string;
  readonly contentType: string;
  /** The client's extra headers; never Content-Type or Content-Length, which are ours. */
  readonly headers: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
}

/**
 * A URL fit for logs and for the job record: origin and path only. The query
 * of a pre-signed URL is a credential and never leaves this process.
 */
export function withoutQuery(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/**
 * A destination URL as the client gave it, without its query or fragment:
 * for views and messages about a `{jobId}`/`{index}` template, which stays as
 * written (parsing it would percent-encode the braces in a path).
 */
export function templateWithoutQuery(url: string): string {
  return url.replace(/[?#][\s\S]*$/, '');
}

/** What a final answer means: null for success, otherwise the failure and its class. */
export function statusFailure(status: number, where: string): JobFailure | null {
  if (status >= 200 && status < 300) return null;
  if (status >= 300 && status < 400) {
    return new PermanentError('destination_redirect', `${where} answered ${status}, a redirect; redirects are not followed, so give the final URL`);
  }
  if (status === 408 || status === 425 || status === 429) {
    return new TransientError('destination_busy', `${where} answered ${status}`);
  }
  if (status >= 400 && status < 500) {
    return new PermanentError(
      'destination_rejected',
      `${where} refused the upload with ${status}; check the URL (a pre-signed URL may have expired) and the headers`,
    );
  }
  return new TransientError('destination_failed', `${where} answered ${status}`);
}

/**
 * PUTs a file to `upload.url`, streaming it from disk with its Content-Type
 * and Content-Length. Follows no redirect, connects only to addresses the
 * policy allows, and gives up when the signal fires or the socket idles.
 * A fresh connection per upload (no agent): nothing outlives the attempt.
 */
export async function putFile(upload: Upload, policy: AddressPolicy): Promise<void> {
  const { url, signal } = upload;
  const where = withoutQuery(url);
  const refusal = policy.hostRefusal(url.hostname);
  if (refusal !== null) throw new DestinationNotAllowedError(`${where}: ${refusal}`);

  const { size } = await fsp.stat(upload.file);
  const transport = url.protocol === 'https:' ? https : http;
  let status: number;
  try {
    status = await new Promise<number>((resolve, reject) => {
      const request = transport.request(url, {
        method: 'PUT',
        headers: { ...upload.headers, 'content-type': upload.contentType, 'content-length': size },
        lookup: policy.lookupFor(url.hostname),
        agent: false,
        signal,
        timeout: SOCKET_IDLE_TIMEOUT_MS,
      });
      request.on('response', (response) => {
        // Only the status matters; the body is not read.
        response.destroy();
        resolve(response.statusCode ?? 0);
      });
      request.on('timeout', () => {
        request.destroy(new TransientError('destination_timeout', `${where} was silent for ${SOCKET_IDLE_TIMEOUT_MS} ms`));
      });
      request.on('error', reject);
      // A server may answer (and close) before taking the whole body: its answer wins.
      pipeline(fs.createReadStream(upload.file), request).catch(reject);
    });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    if (error instanceof JobFailure) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new TransientError('destination_unreachable', `${where} could not be reached (${code})`, { cause: error });
  }
  const failure = statusFailure(status, where);
  if (failure) throw failure;
}
