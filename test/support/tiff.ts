/**
 * A small baseline TIFF writer, for TIFFs laid out as many writers lay them
 * out and as sharp cannot be asked to: in either byte order, with the image
 * directory after the pixels (so past the bytes a submission sniffs, when the
 * image is large enough). Uncompressed 8-bit RGB, one strip.
 */

export type ByteOrder = 'II' | 'MM';

const SHORT = 3;
const LONG = 4;
const RATIONAL = 5;

interface Entry {
  readonly tag: number;
  readonly type: typeof SHORT | typeof LONG | typeof RATIONAL;
  readonly values: readonly number[];
}

const sizeOf = { [SHORT]: 2, [LONG]: 4, [RATIONAL]: 8 } as const;

/** `width` x `height` RGB `pixels` (3 bytes each, row by row) as a TIFF whose first directory follows the pixels. */
export function tiffWithDirectoryLast(width: number, height: number, pixels: Buffer, order: ByteOrder): Buffer {
  if (pixels.length !== width * height * 3) throw new Error('pixels must hold width x height RGB samples');
  const little = order === 'II';
  const entries: Entry[] = [
    { tag: 256, type: LONG, values: [width] }, // ImageWidth
    { tag: 257, type: LONG, values: [height] }, // ImageLength
    { tag: 258, type: SHORT, values: [8, 8, 8] }, // BitsPerSample
    { tag: 259, type: SHORT, values: [1] }, // Compression: none
    { tag: 262, type: SHORT, values: [2] }, // PhotometricInterpretation: RGB
    { tag: 273, type: LONG, values: [8] }, // StripOffsets: right after the header
    { tag: 277, type: SHORT, values: [3] }, // SamplesPerPixel
    { tag: 278, type: LONG, values: [height] }, // RowsPerStrip
    { tag: 279, type: LONG, values: [pixels.length] }, // StripByteCounts
    { tag: 282, type: RATIONAL, values: [72, 1] }, // XResolution
    { tag: 283, type: RATIONAL, values: [72, 1] }, // YResolution
    { tag: 284, type: SHORT, values: [1] }, // PlanarConfiguration: chunky
    { tag: 296, type: SHORT, values: [2] }, // ResolutionUnit: inch
  ];
  // Directory offsets are even (word-aligned).
  const directoryAt = 8 + pixels.length + (pixels.length % 2);
  const directoryBytes = 2 + 12 * entries.length + 4;
  const valueBytes = entries.reduce((sum, entry) => {
    const bytes = sizeOf[entry.type] * (entry.type === RATIONAL ? entry.values.length / 2 : entry.values.length);
    return sum + (bytes > 4 ? bytes : 0);
  }, 0);
  const file = Buffer.alloc(directoryAt + directoryBytes + valueBytes);
  const u16 = (value: number, at: number): number => (little ? file.writeUInt16LE(value, at) : file.writeUInt16BE(value, at));
  const u32 = (value: number, at: number): number => (little ? file.writeUInt32LE(value, at) : file.writeUInt32BE(value, at));
  const put = (type: Entry['type'], values: readonly number[], at: number): void => {
    values.forEach((value, i) => (type === SHORT ? u16(value, at + 2 * i) : u32(value, at + 4 * i)));
  };

  file.write(order, 0, 'latin1');
  u16(42, 2);
  u32(directoryAt, 4);
  pixels.copy(file, 8);
  u16(entries.length, directoryAt);
  let valuesAt = directoryAt + directoryBytes;
  entries.forEach((entry, i) => {
    const at = directoryAt + 2 + 12 * i;
    const count = entry.type === RATIONAL ? entry.values.length / 2 : entry.values.length;
    u16(entry.tag, at);
    u16(entry.type, at + 2);
    u32(count, at + 4);
    if (sizeOf[entry.type] * count <= 4) {
      put(entry.type, entry.values, at + 8);
    } else {
      u32(valuesAt, at + 8);
      put(entry.type, entry.values, valuesAt);
      valuesAt += sizeOf[entry.type] * count;
    }
  });
  u32(0, directoryAt + directoryBytes - 4); // no next directory
  return file;
}
