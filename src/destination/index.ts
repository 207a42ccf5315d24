import type { Logger } from 'pino';
import { outputFormatInfo } from '../image/outputFormat.js';
import type { Destination, HttpDestination, OutputFormat } from '../jobs/options.js';
import { PermanentError } from '../queue/errors.js';
import { createAddressPolicy } from './addressPolicy.js';
import { putFile, templateWithoutQuery, withoutQuery } from './httpUpload.js';
import { createLocalStore } from './localStore.js';

export { localOutputPath } from './localStore.js';

/**
 * The URL image `index` of job `jobId` goes to: its entry in `urls`, or
 * `url` with `{jobId}` and `{index}` filled in (before parsing, since WHATWG
 * URL would percent-encode the braces in a path).
 */
function imageUrl(destination: HttpDestination, jobId: number, index: number): URL {
  const raw = destination.urls === undefined
    ? (destination.url ?? '').replaceAll('{jobId}', String(jobId)).replaceAll('{index}', String(index))
    : destination.urls[index];
  if (raw === undefined) {
    throw new PermanentError('destination_invalid', `the destination has no URL for image ${index} (urls holds ${destination.urls?.length ?? 0})`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch (error) {
    throw new PermanentError('destination_invalid', `the destination URL for image ${index} is not a valid URL once filled in`, { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PermanentError('destination_invalid', `the destination URL for image ${index} must be http or https`);
  }
  return url;
}

/**
 * Whether a destination can serve a job of `imageCount` images, checked at
 * submission: null when acceptable, otherwise the reason for the client.
 * IP-literal hosts and the allow-list are checked here; DNS names are only
 * resolved at delivery, where every address is checked again.
 */
export function checkDestination(destination: Destination, imageCount: number, allowedHosts: readonly string[] | undefined): string | null {
  if (destination.type === 'local') return null;
  if (destination.urls !== undefined && destination.urls.length !== imageCount) {
    return `urls holds ${destination.urls.length} URLs for ${imageCount} images; give one URL per image, in upload order`;
  }
  if (destination.url !== undefined && imageCount > 1 && !destination.url.includes('{index}')) {
    return `url must contain {index} when a job has several images (or give urls, one per image)`;
  }
  const policy = createAddressPolicy(allowedHosts);
  for (let index = 0; index < imageCount; index += 1) {
    let url: URL;
    try {
      // The job id is not known yet: any number shows what the template makes of the host.
      url = imageUrl(destination, 1, index);
    } catch (error) {
      return (error as Error).message;
    }
    const refusal = policy.hostRefusal(url.hostname);
    // Quoted as given: the number that stood in for the job id is no job's.
    const given = destination.urls?.[index] ?? destination.url ?? '';
    if (refusal !== null) return `destination ${templateWithoutQuery(given)}: ${refusal}`;
  }
  return null;
}

export interface Delivery {
  readonly jobId: number;
  readonly index: number;
  /** The converted file, in the temp store. */
  readonly file: string;
  readonly format: OutputFormat;
  readonly signal: AbortSignal;
}

export interface DestinationSettings {
  /** Root of the local output store. */
  readonly outputDir: string;
  readonly uploadAllowedHosts: readonly string[] | undefined;
  readonly log: Logger;
}

/** Sends converted images where their job asked: the local output store or an HTTP PUT. */
export function createDestinations(settings: DestinationSettings) {
  const policy = createAddressPolicy(settings.uploadAllowedHosts);
  const local = createLocalStore(settings.outputDir);

  return {
    /** Delivers one image; returns its `location` (never holding a URL's query). */
    async deliver(destination: Destination, delivery: Delivery): Promise<string> {
      if (destination.type === 'local') {
        delivery.signal.throwIfAborted();
        return local.store(delivery.jobId, delivery.index, delivery.format, delivery.file);
      }
      const url = imageUrl(destination, delivery.jobId, delivery.index);
      const location = withoutQuery(url);
      settings.log.debug({ jobId: delivery.jobId, index: delivery.index, destination: location }, 'uploading image');
      const { contentType } = outputFormatInfo[delivery.format];
      await putFile({ url, file: delivery.file, contentType, headers: withoutFraming(destination.headers), signal: delivery.signal }, policy);
      return location;
    },
  };
}

/** The client's headers minus Content-Type, which is ours to set from the output format. */
function withoutFraming(headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(headers ?? {}).filter(([name]) => name.toLowerCase() !== 'content-type'));
}
