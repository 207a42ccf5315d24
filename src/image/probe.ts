import { fileTypeFromBuffer } from 'file-type';
import { sharpDetail } from './conversionErrors.js';
import { readHeader } from './header.js';
import { headerFromLeadingBytes } from './leadingHeader.js';

/** The raster formats the service accepts: what sharp's prebuilt libvips decodes. */
export type ProbedFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'avif' | 'heif' | 'tiff';

export interface ProbedImage {
  readonly format: ProbedFormat;
  /** Width of one frame as displayed (EXIF orientation applied). */
  readonly width: number;
  /** Height of one frame (the page height of an animation), as displayed. */
  readonly height: number;
  readonly pages: number;
}

/** An upload the service will not take; `code` says why (see `refusals` in `src/jobs/errors.ts`). */
export class ImageRefusedError extends Error {
  constructor(
    readonly code: 'unsupported_media_type' | 'image_too_large' | 'image_corrupt',
    message: string,
  ) {
    super(message);
    this.name = 'ImageRefusedError';
  }
}

/** file-type's extension → the format we record, for the formats we accept. */
const acceptedSniffs: Readonly<Record<string, ProbedFormat>> = {
  jpg: 'jpeg',
  png: 'png',
  // Animated PNG: libvips reads its first frame, which is a plain PNG.
  apng: 'png',
  gif: 'gif',
  webp: 'webp',
  avif: 'avif',
  heic: 'heif',
  tif: 'tiff',
};

/** What sharp must call the container for each sniffed format: the two must agree. */
const sharpFormatOf: Readonly<Record<ProbedFormat, string>> = {
  jpeg: 'jpeg',
  png: 'png',
  gif: 'gif',
  webp: 'webp',
  avif: 'heif',
  heif: 'heif',
  tiff: 'tiff',
};

const ACCEPTED_LIST = 'JPEG, PNG, GIF, WebP, AVIF or TIFF';

/** An uploaded file as `probeImage` reads it. */
export interface UploadedFile {
  readonly path: string;
  /** Its first bytes, kept as it was written (see `HEAD_BYTES`); all of it when it is that small. */
  readonly head: Buffer;
  readonly bytes: number;
}

/** The two TIFF signatures: byte order, then 42 in that order. */
const TIFF_SIGNATURES = [Buffer.from('II*\0', 'latin1'), Buffer.from('MM\0*', 'latin1')];

/**
 * file-type reads a TIFF's first directory, to tell TIFF from the camera raw
 * formats built on it, and knows nothing when that directory lies past the
 * head (many writers, libtiff among them, put it after the pixels). The
 * signature is enough to go on: libvips reads the header next and has the
 * last word, so a file that only begins like a TIFF is refused there.
 */
const hasTiffSignature = (head: Buffer): boolean => TIFF_SIGNATURES.some((signature) => head.subarray(0, 4).equals(signature));

/**
 * Formats whose whole header precedes the image data, so that libvips reads
 * it from the leading bytes alone: JPEG's markers up to the scan, PNG's
 * chunks up to the first IDAT. Leading bytes that stop short of it fail to
 * parse (libvips reports the early end), never parse as something else. A
 * GIF's frames, an animated WebP's and a TIFF's pages, and a HEIF's boxes
 * are spread over the file: those headers are read from the file.
 */
const HEADER_UP_FRONT: ReadonlySet<ProbedFormat> = new Set(['jpeg', 'png']);

/**
 * The header of `file`, from the bytes already in memory when they hold it
 * (the common case: opening and parsing the file again costs a submission
 * more CPU than everything else it does), from the file otherwise. A plain
 * JPEG or PNG header is read here in JavaScript (`headerFromLeadingBytes`);
 * libvips reads the rest, and decides whenever that does not answer.
 */
async function headerOf(file: UploadedFile, format: ProbedFormat) {
  if (format === 'jpeg' || format === 'png') {
    const header = headerFromLeadingBytes(format, file.head);
    if (header !== null) return header;
  }
  if (file.head.length === file.bytes) return readHeader(file.head);
  if (HEADER_UP_FRONT.has(format)) {
    try {
      return await readHeader(file.head);
    } catch {
      // The header runs past the head, or is damaged: the file says which.
    }
  }
  return readHeader(file.path);
}

/**
 * Decides whether an uploaded file is an image the service converts, from
 * its bytes alone (never the client's content type or name): the format is
 * sniffed from its head, then the header is read without decoding a pixel
 * to get the size and refuse pixel bombs. Throws `ImageRefusedError`:
 * `unsupported_media_type` for anything that is not an accepted raster format
 * (SVG, PDF, HEVC HEIC, text…), `image_corrupt` when the header is
 * unreadable, `image_too_large` when the frames hold more than
 * `maxInputPixels` pixels in total.
 */
export async function probeImage(file: UploadedFile, maxInputPixels: number): Promise<ProbedImage> {
  const sniffed = await fileTypeFromBuffer(file.head);
  const format = sniffed === undefined ? (hasTiffSignature(file.head) ? 'tiff' : undefined) : acceptedSniffs[sniffed.ext];
  if (format === undefined) {
    const what = sniffed === undefined ? 'not a recognised image' : sniffed.mime;
    throw new ImageRefusedError('unsupported_media_type', `the file is ${what}; send ${ACCEPTED_LIST}`);
  }

  let header;
  try {
    header = await headerOf(file, format);
  } catch (error) {
    throw new ImageRefusedError('image_corrupt', `the ${format} header cannot be read (${sharpDetail(error, file.path)}); the file is damaged or incomplete`);
  }
  if (header.format !== sharpFormatOf[format]) {
    throw new ImageRefusedError('unsupported_media_type', `the file looks like ${format} but decodes as ${header.format}; send ${ACCEPTED_LIST}`);
  }
  if (header.format === 'heif' && header.compression !== 'av1') {
    throw new ImageRefusedError('unsupported_media_type', `HEIF images compressed with ${header.compression ?? 'an unknown codec'} are not supported; send AVIF or JPEG`);
  }

  const pixels = header.width * header.height * header.pages;
  if (pixels > maxInputPixels) {
    const frames = header.pages > 1 ? ` x ${header.pages} frames` : '';
    throw new ImageRefusedError(
      'image_too_large',
      `${header.width}x${header.height}${frames} is ${pixels} pixels, above the limit of ${maxInputPixels}; send a smaller image`,
    );
  }
  return { format, width: header.width, height: header.height, pages: header.pages };
}
