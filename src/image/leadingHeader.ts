import zlib from 'node:zlib';
import type { ImageHeader } from './header.js';

/**
 * The header of a JPEG or PNG read from its leading bytes, in JavaScript:
 * what a submission needs (size as displayed, frames) without a call into
 * libvips, which costs a submission a third of its CPU (the call, the
 * thread it runs on, the loader machinery) for a few hundred bytes of
 * markers or chunks.
 *
 * It answers only for headers it can read whole and finds well formed, by
 * the rules libjpeg and libspng apply when they read a header: every
 * segment or chunk where it belongs, of the length its contents need, with
 * legal values (and, for PNG, a matching CRC). Anything else — the bytes stop
 * short, an arithmetic-coded, 12-bit or lossless JPEG, fill bytes, an
 * unknown critical chunk — gets `null`, and libvips reads the header
 * instead and has the last word. A test damages JPEGs and PNGs of many kinds
 * at random and checks that whenever this answers, libvips answers the same.
 */
export function headerFromLeadingBytes(format: 'jpeg' | 'png', bytes: Buffer): ImageHeader | null {
  return format === 'jpeg' ? jpegHeader(bytes) : pngHeader(bytes);
}

/** EXIF orientations 5 to 8 turn the image a quarter: width and height trade places. */
const swapsSides = (orientation: number): boolean => orientation >= 5;

// ---------------------------------------------------------------- JPEG

/** libjpeg's largest width or height (JPEG_MAX_DIMENSION). */
const JPEG_MAX_DIMENSION = 65_500;
/** Frame headers of baseline, extended and progressive Huffman-coded JPEG: what libjpeg decodes at 8 bits. */
const HUFFMAN_FRAMES = new Set([0xc0, 0xc1, 0xc2]);
const DHT = 0xc4;
const DQT = 0xdb;
const DRI = 0xdd;
const SOS = 0xda;
const APP1 = 0xe1;
const COM = 0xfe;
const isApp = (marker: number): boolean => marker >= 0xe0 && marker <= 0xef;

interface Frame {
  readonly width: number;
  readonly height: number;
  readonly components: ReadonlySet<number>;
  readonly progressive: boolean;
}

function jpegHeader(bytes: Buffer): ImageHeader | null {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let frame: Frame | null = null;
  let orientation: number | null = null;
  for (let at = 2; ; ) {
    // Each segment: FF, its marker, a length counting itself, its contents.
    if (at + 4 > bytes.length || bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1] as number;
    const length = bytes.readUInt16BE(at + 2);
    const end = at + 2 + length;
    if (length < 2 || end > bytes.length) return null;
    const segment = bytes.subarray(at + 4, end);
    if (HUFFMAN_FRAMES.has(marker)) {
      if (frame !== null) return null;
      frame = readFrame(segment, marker === 0xc2);
      if (frame === null) return null;
    } else if (marker === SOS) {
      if (frame === null || !scanHeaderValid(segment, frame)) return null;
      const sideways = swapsSides(orientation ?? 1);
      return {
        format: 'jpeg',
        width: sideways ? frame.height : frame.width,
        height: sideways ? frame.width : frame.height,
        pages: 1,
        compression: undefined,
      };
    } else if (marker === DHT) {
      if (!huffmanTablesValid(segment)) return null;
    } else if (marker === DQT) {
      if (!quantisationTablesValid(segment)) return null;
    } else if (marker === DRI) {
      if (length !== 4) return null;
    } else if (marker === APP1 && segment.length > 4 && segment.subarray(0, 4).toString('latin1') === 'Exif') {
      // libvips takes the first such segment as the EXIF block, whole or not: a second one, or one
      // without the full `Exif\0\0` header (which libvips then fails to read), is not plain.
      if (orientation !== null || segment.subarray(0, 6).toString('latin1') !== 'Exif\0\0') return null;
      orientation = exifOrientation(segment.subarray(6));
      if (orientation === null) return null;
    } else if (!isApp(marker) && marker !== COM) {
      // Another frame type, a second SOI, EOI, DNL, fill bytes…: not a plain header.
      return null;
    }
    at = end;
  }
}

function readFrame(segment: Buffer, progressive: boolean): Frame | null {
  if (segment.length < 6 || segment[0] !== 8) return null;
  const height = segment.readUInt16BE(1);
  const width = segment.readUInt16BE(3);
  const count = segment[5] as number;
  if (height === 0 || width === 0 || height > JPEG_MAX_DIMENSION || width > JPEG_MAX_DIMENSION) return null;
  if (![1, 3, 4].includes(count) || segment.length !== 6 + 3 * count) return null;
  const components = new Set<number>();
  for (let i = 0; i < count; i += 1) {
    const id = segment[6 + 3 * i] as number;
    const sampling = segment[7 + 3 * i] as number;
    const table = segment[8 + 3 * i] as number;
    const [horizontal, vertical] = [sampling >> 4, sampling & 0x0f];
    if (components.has(id) || horizontal < 1 || horizontal > 4 || vertical < 1 || vertical > 4 || table > 3) return null;
    components.add(id);
  }
  return { width, height, components, progressive };
}

function scanHeaderValid(segment: Buffer, frame: Frame): boolean {
  const count = segment[0] ?? 0;
  if (count < 1 || count > 4 || segment.length !== 4 + 2 * count) return false;
  const seen = new Set<number>();
  for (let i = 0; i < count; i += 1) {
    const id = segment[1 + 2 * i] as number;
    const tables = segment[2 + 2 * i] as number;
    if (!frame.components.has(id) || seen.has(id) || tables >> 4 > 3 || (tables & 0x0f) > 3) return false;
    seen.add(id);
  }
  const [start, stop, approximation] = [segment[1 + 2 * count] as number, segment[2 + 2 * count] as number, segment[3 + 2 * count] as number];
  // A sequential scan covers all 64 coefficients at once; a progressive one is checked by libjpeg as it decodes.
  return frame.progressive || (start === 0 && stop === 63 && approximation === 0);
}

function huffmanTablesValid(segment: Buffer): boolean {
  for (let at = 0; at < segment.length; ) {
    const id = segment[at] as number;
    if (id >> 4 > 1 || (id & 0x0f) > 3 || at + 17 > segment.length) return false;
    let symbols = 0;
    for (let bits = 1; bits <= 16; bits += 1) symbols += segment[at + bits] as number;
    if (symbols > 256) return false;
    at += 17 + symbols;
    if (at > segment.length) return false;
  }
  return segment.length > 0;
}

function quantisationTablesValid(segment: Buffer): boolean {
  for (let at = 0; at < segment.length; ) {
    const id = segment[at] as number;
    if (id >> 4 > 1 || (id & 0x0f) > 3) return false;
    at += 1 + 64 * ((id >> 4) + 1);
    if (at > segment.length) return false;
  }
  return segment.length > 0;
}

/** EXIF's orientation (1 when it has none), or null when the EXIF block is not plainly readable. */
function exifOrientation(tiff: Buffer): number | null {
  if (tiff.length < 8) return null;
  const order = tiff.subarray(0, 2).toString('latin1');
  if (order !== 'II' && order !== 'MM') return null;
  const little = order === 'II';
  const u16 = (at: number): number => (little ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number): number => (little ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  if (u16(2) !== 42) return null;
  const directory = u32(4);
  if (directory < 8 || directory + 2 > tiff.length) return null;
  const entries = u16(directory);
  if (directory + 2 + 12 * entries > tiff.length) return null;
  for (let i = 0; i < entries; i += 1) {
    const entry = directory + 2 + 12 * i;
    if (u16(entry) !== 0x0112) continue;
    // SHORT, one value, stored in the entry itself.
    if (u16(entry + 2) !== 3 || u32(entry + 4) !== 1) return null;
    const orientation = u16(entry + 8);
    return orientation >= 1 && orientation <= 8 ? orientation : null;
  }
  return 1;
}

// ---------------------------------------------------------------- PNG

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Bit depths each colour type allows. */
const DEPTHS: Readonly<Record<number, readonly number[]>> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
/** libvips' largest PNG width or height (it sets libpng's user limits so). */
const PNG_MAX_DIMENSION = 100_000_000;
/** The largest length a PNG chunk may declare. */
const MAX_CHUNK = 2 ** 31 - 1;

function pngHeader(bytes: Buffer): ImageHeader | null {
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return null;
  let width = 0;
  let height = 0;
  let colourType = -1;
  let depth = 0;
  let palette = 0;
  let transparency = false;
  for (let at = 8; ; ) {
    // Each chunk: length, type, data, CRC of type and data.
    if (at + 8 > bytes.length) return null;
    const length = bytes.readUInt32BE(at);
    const type = bytes.subarray(at + 4, at + 8).toString('latin1');
    if (length > MAX_CHUNK) return null;
    if (type === 'IDAT' && at > 8) {
      // The pixels begin: the header is whole. Their data and CRC are the decoder's to check.
      if (colourType === 3 && palette === 0) return null;
      return { format: 'png', width, height, pages: 1, compression: undefined };
    }
    const end = at + 12 + length;
    if (end > bytes.length) return null;
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (zlib.crc32(bytes.subarray(at + 4, at + 8 + length)) !== bytes.readUInt32BE(at + 8 + length)) return null;
    const first = at === 8;
    if (first !== (type === 'IHDR')) return null;
    if (type === 'IHDR') {
      if (length !== 13) return null;
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [bits, colour, compression, filter, interlace] = [data[8], data[9], data[10], data[11], data[12]] as number[];
      if (width === 0 || height === 0 || width > PNG_MAX_DIMENSION || height > PNG_MAX_DIMENSION) return null;
      if (!DEPTHS[colour as number]?.includes(bits as number) || compression !== 0 || filter !== 0 || (interlace as number) > 1) return null;
      colourType = colour as number;
      depth = bits as number;
    } else if (type === 'PLTE') {
      // Entries of three bytes; no more than the bit depth can index when the pixels are indexes.
      const entries = length / 3;
      if (palette > 0 || !Number.isInteger(entries) || entries < 1 || entries > 256 || colourType === 0 || colourType === 4) return null;
      if (colourType === 3 && entries > 2 ** depth) return null;
      palette = entries;
    } else if (type === 'tRNS') {
      // One grey or RGB sample to treat as transparent, or an alpha per palette entry.
      const fits = colourType === 0 ? length === 2 : colourType === 2 ? length === 6 : colourType === 3 && palette > 0 && length >= 1 && length <= palette;
      if (transparency || !fits) return null;
      transparency = true;
    } else if (type === 'eXIf') {
      // libvips turns the size by its orientation: leave that to libvips.
      return null;
    } else if (!/^[a-z][A-Za-z][A-Z][A-Za-z]$/.test(type)) {
      // Not an ancillary chunk (IEND, an unknown critical one, a name out of spec) before the pixels.
      return null;
    }
    at = end;
  }
}
