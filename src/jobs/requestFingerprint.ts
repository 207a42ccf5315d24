import { createHash } from 'node:crypto';
import type { JobOptions } from './options.js';

/**
 * What a submission asked for, as one SHA-256 (hex): its validated options
 * (defaults filled in, so leaving an option out and giving its default are
 * the same request), its destination, and each image's bytes in upload
 * order, by their own SHA-256 taken while they streamed to disk. Filenames
 * are metadata and not part of it. Two submissions with one idempotency key
 * and different fingerprints are different requests.
 */
export function requestFingerprint(options: JobOptions, images: readonly { readonly sha256: string | null }[]): string {
  return createHash('sha256')
    .update(canonicalJson({ options, images: images.map(digestOf) }))
    .digest('hex');
}

function digestOf(image: { readonly sha256: string | null }): string {
  if (image.sha256 === null) throw new Error('a fingerprinted image must have been hashed as it streamed');
  return image.sha256;
}

/** JSON with every object's keys sorted, so that the order a client wrote them in does not matter. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, field]) => field !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
