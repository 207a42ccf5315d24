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

/**
 * The numeric options take integers, given as JSON numbers: `70`, not
 * `"70"` or `70.5`. The query string has only text, so there an integer
 * option is read from its decimal digits (`optionsFromQuery`): one rule,
 * whichever form a submission takes.
 */
const integer = (min: number, max: number) => z.number().int().min(min).max(max);
const dimension = integer(1, 100_000);

export const jobOptionsSchema = z.strictObject({
  format: z.enum(outputFormats).default('webp'),
  quality: integer(1, 100).optional(),
  width: dimension.optional(),
  height: dimension.optional(),
  fit: z.enum(fits).optional(),
  maxAttempts: integer(1, 100).optional(),
  priority: integer(-1_000_000, 1_000_000).default(0),
  delayMs: integer(0, 365 * 24 * 3_600_000).default(0),
  destination: destinationSchema.default({ type: 'local' }),
});

/** The options whose values are integers. */
const integerOptions: ReadonlySet<string> = new Set(['quality', 'width', 'height', 'maxAttempts', 'priority', 'delayMs']);

/**
 * Options as the query string gives them, made ready for `jobOptionsSchema`:
 * an integer option written as one (decimal digits, perhaps a minus) becomes
 * that number; any other text is left as it is, for the schema to refuse.
 */
export function optionsFromQuery(values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(values).map(([name, value]) => [name, integerOptions.has(name) && typeof value === 'string' && /^-?\d{1,16}$/.test(value) ? Number(value) : value]),
  );
}

export type JobOptions = z.infer<typeof jobOptionsSchema>;

/** The conversion part of validated options, as stored on the job. */
export function conversionOptions(options: JobOptions): ConversionOptions {
  const { format, quality, width, height, fit } = options;
  return { format, quality, width, height, fit };
}
