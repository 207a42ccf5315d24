import type { OutputFormat } from '../jobs/options.js';

/** What the service needs to know about each output format, in one table. */
export interface OutputFormatInfo {
  /** File extension of results, without the dot. */
  readonly extension: string;
  readonly contentType: string;
  /**
   * The largest width or height the encoder accepts. Measured with sharp 0.35
   * / libvips 8.18: WebP refuses 16384 ("too large for the WebP format"),
   * AVIF (libheif) refuses 16385, libjpeg refuses 65501. PNG's own limit is
   * 2^31-1; inputs are bounded far below it by MAX_INPUT_PIXELS.
   */
  readonly maxDimension: number;
}

export const outputFormatInfo: Readonly<Record<OutputFormat, OutputFormatInfo>> = {
  webp: { extension: 'webp', contentType: 'image/webp', maxDimension: 16_383 },
  avif: { extension: 'avif', contentType: 'image/avif', maxDimension: 16_384 },
  jpeg: { extension: 'jpg', contentType: 'image/jpeg', maxDimension: 65_500 },
  png: { extension: 'png', contentType: 'image/png', maxDimension: 2_147_483_647 },
};
