import sharp from 'sharp';

/** What an image's header says, read without decoding a pixel. */
export interface ImageHeader {
  /** sharp's name for the container: jpeg, png, gif, webp, heif, tiff, svg, … */
  readonly format: string;
  /** Width of one frame as displayed (EXIF orientation applied). */
  readonly width: number;
  /** Height of one frame as displayed (EXIF orientation applied). */
  readonly height: number;
  /** Frames of an animation, pages of a TIFF or images in a HEIF container; 1 otherwise. */
  readonly pages: number;
  /** HEIF only: `av1` (AVIF) or `hevc` (HEIC). */
  readonly compression: string | undefined;
}

/**
 * Reads an image's header, from a file or from bytes in memory, with
 * `metadata()`: no pixel is decoded, so this is cheap and safe on a pixel
 * bomb. The pixel limit is left off here because callers compare the
 * dimensions against their own limit and want the figures, not sharp's error.
 * Throws sharp's error when the header cannot be read.
 */
export async function readHeader(input: string | Buffer): Promise<ImageHeader> {
  const metadata = await sharp(input, { limitInputPixels: false }).metadata();
  // Opened without `animated`, width and height describe the first frame.
  return {
    format: metadata.format,
    width: metadata.autoOrient.width,
    height: metadata.autoOrient.height,
    pages: metadata.pages ?? 1,
    compression: metadata.compression,
  };
}
