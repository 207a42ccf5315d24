import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import type { TempStore } from '../../src/storage/tempStore.js';

/**
 * Test images, made with sharp (or by hand, for the broken ones) so tests
 * depend on no fixture file. Every maker returns the encoded bytes.
 */

/** Raw RGB(A) pixels: a diagonal gradient, with a see-through left half when `alpha`. */
function gradientPixels(width: number, height: number, channels: 3 | 4): Buffer {
  const pixels = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const at = (y * width + x) * channels;
      pixels[at] = Math.round((255 * x) / Math.max(1, width - 1));
      pixels[at + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      pixels[at + 2] = 128;
      if (channels === 4) pixels[at + 3] = x < width / 2 ? 0 : 255;
    }
  }
  return pixels;
}

export function gradient(width: number, height: number, channels: 3 | 4 = 3): Sharp {
  return sharp(gradientPixels(width, height, channels), { raw: { width, height, channels } });
}

export const gradientJpeg = (width: number, height: number): Promise<Buffer> => gradient(width, height).jpeg({ quality: 90 }).toBuffer();

export const gradientPng = (width: number, height: number): Promise<Buffer> => gradient(width, height).png().toBuffer();

/** Gaussian noise: compresses badly, so conversions take real work. */
export const noiseJpeg = (width: number, height: number): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .jpeg({ quality: 90 })
    .toBuffer();

/** A `width` x `height` JPEG whose EXIF says to display it turned by `orientation` (6: 90° clockwise). */
export const exifRotatedJpeg = (width: number, height: number, orientation: number): Promise<Buffer> =>
  gradient(width, height).jpeg().withMetadata({ orientation }).toBuffer();

export const cmykJpeg = (width: number, height: number): Promise<Buffer> => gradient(width, height).toColourspace('cmyk').jpeg().toBuffer();

export const sixteenBitPng = (width: number, height: number): Promise<Buffer> => gradient(width, height).toColourspace('rgb16').png().toBuffer();

/** Transparent on its left half. */
export const alphaPng = (width: number, height: number): Promise<Buffer> => gradient(width, height, 4).png().toBuffer();

/** `frames` frames of `width` x `height`, each a different colour. */
function frameStrip(width: number, height: number, frames: number): Sharp {
  const strip = Buffer.alloc(width * height * frames * 4);
  for (let frame = 0; frame < frames; frame += 1) {
    for (let at = frame * width * height * 4; at < (frame + 1) * width * height * 4; at += 4) {
      strip[at] = (frame * 70) % 256;
      strip[at + 1] = 255 - ((frame * 40) % 256);
      strip[at + 2] = 90;
      strip[at + 3] = 255;
    }
  }
  return sharp(strip, { raw: { width, height: height * frames, channels: 4, pageHeight: height } });
}

export const animatedGif = (width: number, height: number, frames: number): Promise<Buffer> =>
  frameStrip(width, height, frames).gif({ delay: new Array<number>(frames).fill(100) }).toBuffer();

export const animatedWebp = (width: number, height: number, frames: number): Promise<Buffer> =>
  frameStrip(width, height, frames).webp({ delay: new Array<number>(frames).fill(100) }).toBuffer();

/** The first `fraction` of a file, as an interrupted upload leaves it. */
export const truncated = (bytes: Buffer, fraction = 0.5): Buffer => bytes.subarray(0, Math.floor(bytes.length * fraction));

/** JPEG magic followed by garbage: sniffs as JPEG, has no readable header. */
export const corruptHeaderJpeg = (): Buffer => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xdb]), Buffer.from('not a quantisation table '.repeat(40))]);

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A decompression bomb: a valid PNG of a few dozen bytes whose header claims
 * `width` x `height` RGB pixels (its image data is a single empty deflate block).
 */
export function pixelBombPng(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, no filter, not interlaced
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(0))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A GIF whose logical screen claims 65535 x 65535 around a single 1x1 frame. */
export function hugeScreenGif(): Buffer {
  return Buffer.concat([
    Buffer.from('GIF89a', 'latin1'),
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00]), // screen 65535x65535, 2-colour global table
    Buffer.from([0, 0, 0, 255, 255, 255]),
    Buffer.from([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0x00]), // image descriptor: 1x1 at 0,0
    Buffer.from([0x02, 0x02, 0x44, 0x01, 0x00]), // LZW minimum code size 2, one data block
    Buffer.from([0x3b]),
  ]);
}

/** Writes `images` as a new job's inputs in the temp store, the way a submission does; returns its key. */
export async function stageInputs(tempStore: TempStore, images: readonly Buffer[]): Promise<string> {
  const key = tempStore.newKey();
  for (const [index, bytes] of images.entries()) await (await tempStore.writeInput(key, index, Readable.from([bytes]), Number.MAX_SAFE_INTEGER)).synced;
  return key;
}

/** Names of the temp store's files under `key`, without the key: `0`, `0.out.webp`, … */
export async function filesOf(tempStore: TempStore, key: string): Promise<string[]> {
  return (await fsp.readdir(tempStore.root)).filter((name) => name.startsWith(`${key}.`)).map((name) => name.slice(key.length + 1)).sort();
}
