import { z } from 'zod';

/**
 * The options a client may give a job, validated with one schema for both
 * submission forms (multipart `options` JSON and the raw body's query string).
 * Unknown fields are refused.
 */

export const outputFormats = ['webp', 'avif', 'jpeg', 'png'] as const;
export type OutputFormat = (typeof outputFormats)[number];

/** sharp's resize fits. */
export const fits = ['cover', 'contain', 'fill', 'inside', 'outside'] as const;
export type Fit = (typeof fits)[number];

const httpUrl = z
  .string()
  .max(4_096)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '';
    } catch {
      return false;
    }
  }, 'must be an absolute http or https URL without credentials');

/** Header names and values a destination may send; hop-by-hop and framing headers are ours to set. */
const destinationHeaders = z
  .record(
    z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/, 'must be a header name'),
    z.string().max(8_192).regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'must be a header value without control characters'),
  )
  .refine(
    (headers) => !Object.keys(headers).some((name) => /^(content-length|transfer-encoding|host|connection|expect|upgrade|te|trailer)$/i.test(name)),
    'must not set Content-Length, Transfer-Encoding, Host, Connection, Expect, Upgrade, TE or Trailer',
  );

export const destinationSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('local') }),
  z
    .strictObject({
      type: z.literal('http'),
      /** One URL; with several images it must hold `{index}` (and may hold `{jobId}`). */
      url: httpUrl.optional(),
      /** One URL per image, in upload order. */
      urls: z.array(httpUrl).min(1).max(1_000).optional(),
      headers: destinationHeaders.optional(),
    })
    .refine((value) => (value.url === undefined) !== (value.urls === undefined), 'give exactly one of url or urls'),
]);

export type Destination = z.infer<typeof destinationSchema>;
export type HttpDestination = Extract<Destination, { type: 'http' }>;

/** What the conversion of each image uses; stored as the job's `options`. */
export interface ConversionOptions {
  readonly format: OutputFormat;
  readonly quality?: number | undefined;
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  readonly fit?: Fit | undefined;
}

const dimension = z.coerce.number().int().min(1).max(100_000);

export const jobOptionsSchema = z.strictObject({
  format: z.enum(outputFormats).default('webp'),
  quality: z.coerce.number().int().min(1).max(100).optional(),
  width: dimension.optional(),
  height: dimension.optional(),
  fit: z.enum(fits).optional(),
  maxAttempts: z.coerce.number().int().min(1).max(100).optional(),
  priority: z.coerce.number().int().min(-1_000_000).max(1_000_000).default(0),
  delayMs: z.coerce.number().int().min(0).max(365 * 24 * 3_600_000).default(0),
  destination: destinationSchema.default({ type: 'local' }),
});

export type JobOptions = z.infer<typeof jobOptionsSchema>;

/** The conversion part of validated options, as stored on the job. */
export function conversionOptions(options: JobOptions): ConversionOptions {
  const { format, quality, width, height, fit } = options;
  return { format, quality, width, height, fit };
}
