import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { readHeader } from '../src/image/header.js';
import { headerFromLeadingBytes } from '../src/image/leadingHeader.js';
import { ImageRefusedError, probeImage } from '../src/image/probe.js';
import { configureSharp } from '../src/image/sharpSettings.js';
import { HEAD_BYTES } from '../src/storage/tempStore.js';
import {
  alphaPng, animatedGif, animatedWebp, cmykJpeg, corruptHeaderJpeg, exifRotatedJpeg, gradient, gradientJpeg, gradientPng, hugeScreenGif,
  noiseJpeg, pixelBombPng, sixteenBitPng, truncated,
} from './support/images.js';
import { tiffWithDirectoryLast } from './support/tiff.js';

// As the service runs: only the accepted formats' loaders.
configureSharp();

const LIMIT = 50_000_000;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-probe-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Buffer | string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** Probes a file the way a submission does: with the head its upload kept. */
function probe(file: string, limit: number) {
  const bytes = fs.readFileSync(file);
  return probeImage({ path: file, head: bytes.subarray(0, HEAD_BYTES), bytes: bytes.length }, limit);
}

/** Gaussian noise: compresses badly, so the image data runs far past the header. */
const noise = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } });

/**
 * One of `images` damaged as an upload may be: up to `maxFlips` bits flipped
 * in its first `flipWithin` bytes (`bytes`, the whole file), and its leading
 * bytes cut anywhere in the first 4 kB (`head`, the rest on disk only).
 */
function damaged(images: readonly Buffer[], flipWithin: number, maxFlips: number) {
  const flip = fc.record({ at: fc.nat({ max: flipWithin - 1 }), bit: fc.integer({ min: 0, max: 7 }) });
  return fc
    .record({ image: fc.nat({ max: images.length - 1 }), headBytes: fc.integer({ min: 0, max: 4_096 }), flips: fc.array(flip, { maxLength: maxFlips }) })
    .map(({ image, headBytes, flips }) => {
      const bytes = Buffer.from(images[image] ?? Buffer.alloc(0));
      for (const { at, bit } of flips) if (at < bytes.length) bytes[at] = (bytes[at] ?? 0) ^ (1 << bit);
      return { bytes, head: bytes.subarray(0, headBytes) };
    });
}

async function refusal(file: string, limit = LIMIT): Promise<ImageRefusedError> {
  const error = await probe(file, limit).then(
    () => null,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(ImageRefusedError);
  return error as ImageRefusedError;
}

describe('probeImage', () => {
  it('reads format, size and pages of every accepted raster format from the header', async () => {
    const tiff = await sharp({ create: { width: 30, height: 20, channels: 3, background: '#123456' } }).tiff().toBuffer();
    const avif = await sharp({ create: { width: 30, height: 20, channels: 3, background: '#123456' } }).avif().toBuffer();
    const cases: [string, Buffer, object][] = [
      ['a.jpg', await gradientJpeg(40, 30), { format: 'jpeg', width: 40, height: 30, pages: 1 }],
      ['a.png', await gradientPng(40, 30), { format: 'png', width: 40, height: 30, pages: 1 }],
      ['a.gif', await animatedGif(16, 12, 4), { format: 'gif', width: 16, height: 12, pages: 4 }],
      ['a.webp', await animatedWebp(16, 12, 3), { format: 'webp', width: 16, height: 12, pages: 3 }],
      ['a.avif', avif, { format: 'avif', width: 30, height: 20, pages: 1 }],
      ['a.tiff', tiff, { format: 'tiff', width: 30, height: 20, pages: 1 }],
      ['cmyk.jpg', await cmykJpeg(40, 30), { format: 'jpeg', width: 40, height: 30, pages: 1 }],
      ['16.png', await sixteenBitPng(40, 30), { format: 'png', width: 40, height: 30, pages: 1 }],
      ['alpha.png', await alphaPng(40, 30), { format: 'png', width: 40, height: 30, pages: 1 }],
    ];
    for (const [name, bytes, expected] of cases) expect(await probe(write(name, bytes), LIMIT), name).toEqual(expected);
  });

  it('takes a TIFF whose directory lies past the sniffed bytes, in either byte order', async () => {
    const [width, height] = [160, 150];
    const pixels = await gradient(width, height).raw().toBuffer();
    // sharp (libtiff) writes the directory after the pixels too, little-endian only.
    const written = await gradient(width, height).tiff({ compression: 'none' }).toBuffer();
    const files: [string, Buffer][] = [
      ['little.tiff', tiffWithDirectoryLast(width, height, pixels, 'II')],
      ['big.tiff', tiffWithDirectoryLast(width, height, pixels, 'MM')],
      ['sharp.tiff', written],
    ];
    for (const [name, bytes] of files) {
      const order = bytes.subarray(0, 2).toString('latin1');
      const directory = order === 'II' ? bytes.readUInt32LE(4) : bytes.readUInt32BE(4);
      expect(directory, name).toBeGreaterThan(HEAD_BYTES);
      expect(await probe(write(name, bytes), LIMIT), name).toEqual({ format: 'tiff', width, height, pages: 1 });
    }
  });

  it('reports the displayed size of an EXIF-rotated photo', async () => {
    expect(await probe(write('rotated.jpg', await exifRotatedJpeg(40, 20, 6)), LIMIT)).toMatchObject({ width: 20, height: 40 });
  });

  it('sniffs the format from the bytes, whatever the file is called', async () => {
    expect(await probe(write('photo.gif', await gradientPng(10, 10)), LIMIT)).toMatchObject({ format: 'png' });
  });

  it('answers 415 unsupported_media_type for non-images and formats it does not convert', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>';
    const pdf = '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n';
    const bmp = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } }).raw().toBuffer();
    const samples: [string, Buffer | string][] = [
      ['empty', Buffer.alloc(0)],
      ['text', 'hello, this is not an image\n'],
      ['html', '<!doctype html><html><body><img src=x></body></html>'],
      ['svg', svg],
      ['pdf', pdf],
      ['raw pixels', bmp],
      ['random', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251))],
    ];
    for (const [name, bytes] of samples) {
      const error = await refusal(write(name, bytes));
      expect({ name, code: error.code }).toEqual({ name, code: 'unsupported_media_type' });
    }
  });

  it('answers 422 image_corrupt when the header cannot be read', async () => {
    for (const [name, bytes] of [
      ['magic-garbage.jpg', corruptHeaderJpeg()],
      ['cut-in-ihdr.png', (await gradientPng(64, 64)).subarray(0, 24)],
      ['cut.webp', truncated(await animatedWebp(16, 16, 2), 0.5)],
    ] as const) {
      const error = await refusal(write(name, bytes));
      expect({ name, code: error.code }).toEqual({ name, code: 'image_corrupt' });
    }
  });

  it('answers 422 image_too_large for a pixel bomb, from its header alone', async () => {
    const bomb = pixelBombPng(50_000, 50_000);
    expect(bomb.length).toBeLessThan(100);
    // Decoding 2.5 gigapixels would take gigabytes and far longer than the test's timeout.
    const error = await refusal(write('bomb.png', bomb));
    expect(error).toMatchObject({ code: 'image_too_large' });
    expect(error.message).toContain('2500000000 pixels');
  });

  it('measures a GIF claiming a 65535x65535 screen by the frame libvips decodes', async () => {
    expect(await probe(write('screen.gif', hugeScreenGif()), LIMIT)).toEqual({ format: 'gif', width: 1, height: 1, pages: 1 });
  });

  it('counts every frame of an animation against the pixel limit', async () => {
    const file = write('frames.gif', await animatedGif(100, 100, 10));
    expect(await probe(file, 100_000)).toMatchObject({ pages: 10 });
    expect(await refusal(file, 99_999)).toMatchObject({ code: 'image_too_large' });
  });

  it('never names the server path in its message', async () => {
    const file = write('cut.webp', truncated(await animatedWebp(16, 16, 2), 0.5));
    expect((await refusal(file)).message).not.toContain(path.dirname(file));
  });

  it('reads a JPEG header from the bytes in memory when they hold it, and from the file when they stop short of it', async () => {
    // The head of one photo and the path of another: the answer shows which was read.
    const inMemory = await noiseJpeg(400, 300);
    const onDisk = write('other.jpg', await noiseJpeg(200, 100));
    expect(inMemory.length).toBeGreaterThan(HEAD_BYTES);
    expect(await probeImage({ path: onDisk, head: inMemory.subarray(0, HEAD_BYTES), bytes: inMemory.length }, LIMIT)).toMatchObject({ width: 400, height: 300 });

    // Two 60 kB application segments ahead of the frame header (as a large ICC profile or
    // Photoshop block would be): the head ends inside the markers, so the file is read.
    const jpeg = await gradientJpeg(64, 48);
    const app15 = Buffer.concat([Buffer.from([0xff, 0xef, 0xea, 0x62]), Buffer.alloc(60_000, 0x20)]);
    const longHeader = Buffer.concat([jpeg.subarray(0, 2), app15, app15, jpeg.subarray(2)]);
    expect(longHeader.length).toBeGreaterThan(HEAD_BYTES);
    await expect(readHeader(longHeader.subarray(0, HEAD_BYTES))).rejects.toThrow();
    expect(await probe(write('long-header.jpg', longHeader), LIMIT)).toEqual({ format: 'jpeg', width: 64, height: 48, pages: 1 });
  });

  it('never reads a different JPEG or PNG header from leading bytes than from the whole file, cut or damaged anywhere', async () => {
    const images = [
      await noiseJpeg(300, 200),
      await sharp(await noiseJpeg(300, 200)).jpeg({ progressive: true }).withMetadata({ orientation: 6 }).toBuffer(),
      await cmykJpeg(400, 300),
      await noise(200, 150).png().toBuffer(),
      await noise(150, 150).png({ progressive: true }).toBuffer(),
      // Palette and transparency in chunks of their own ahead of the pixels.
      await sharp(await alphaPng(300, 300)).png({ palette: true, colours: 200 }).toBuffer(),
    ];
    let readFromHead = 0;
    await fc.assert(
      fc.asyncProperty(damaged(images, 4_096, 4), async ({ bytes, head }) => {
        const fromHead = await readHeader(head).catch(() => null);
        if (fromHead === null) return;
        readFromHead += 1;
        expect(await readHeader(write('whole', bytes))).toEqual(fromHead);
      }),
      { numRuns: 300 },
    );
    // The property was not met by failing every time.
    expect(readFromHead).toBeGreaterThan(30);
  });

  it('reads plain JPEG and PNG headers in JavaScript exactly as libvips does, and defers to it on anything else', async () => {
    const images = [
      await noise(300, 200).jpeg().toBuffer(),
      await noise(300, 200).jpeg({ progressive: true, chromaSubsampling: '4:4:4' }).toBuffer(),
      await noise(200, 300).jpeg({ mozjpeg: true }).toBuffer(),
      await noise(120, 80).toColourspace('b-w').jpeg().toBuffer(),
      await cmykJpeg(400, 300),
      ...(await Promise.all([3, 6, 8].map((orientation) => noise(240, 160).jpeg().withMetadata({ orientation }).toBuffer()))),
      await noise(200, 150).png().toBuffer(),
      await noise(150, 150).png({ progressive: true }).toBuffer(),
      await noise(100, 60).toColourspace('b-w').png().toBuffer(),
      await sixteenBitPng(90, 70),
      await alphaPng(120, 90),
      await sharp(await alphaPng(300, 300)).png({ palette: true, colours: 200 }).toBuffer(),
      await sharp(await noise(64, 64).png().toBuffer()).png({ palette: true, colours: 16 }).toBuffer(),
    ];
    for (const bytes of images) {
      const format = bytes[0] === 0xff ? 'jpeg' : 'png';
      const header = headerFromLeadingBytes(format, bytes.subarray(0, HEAD_BYTES));
      expect(header, `an undamaged ${format}`).not.toBeNull();
      expect(header).toEqual(await readHeader(bytes));
    }
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(damaged(images, 2_048, 3), async ({ bytes, head }) => {
        const header = headerFromLeadingBytes(bytes[0] === 0x89 ? 'png' : 'jpeg', head);
        if (header === null) return;
        answered += 1;
        expect(await readHeader(write('whole', bytes))).toEqual(header);
      }),
      { numRuns: 400 },
    );
    expect(answered).toBeGreaterThan(40);
  });

  it('leaves to libvips the headers it reads differently: PNG EXIF, a damaged first JPEG EXIF block, huge PNGs, empty palette transparency', async () => {
    // A 40x20 PNG whose eXIf chunk says orientation 6: libvips reports it turned, 20x40.
    const turnedPng = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAACgAAAAUCAIAAABwJOjsAAAAGmVYSWZJSSoACAAAAAEAEgEDAAEAAAAGAAAAAAAAALdIESkAAAAJcEhZcwAAA+gAAAPoAbV7UmsAAAAvSURBVEiJYxBUMh4QxDBqsdJoUAuOJi7j0eykNFqACI4WmcajlYTSaLVoPPyrRQCO8j7QqfBaDwAAAABJRU5ErkJggg==',
      'base64',
    );
    // A 40x20 JPEG with an APP1 "Exif\0\1…" block before a valid one saying orientation 6: libvips
    // reads only the first, fails to parse it, and reports 40x20.
    const shadowedExif = Buffer.from(
      '/9j/4QAMRXhpZgABSUkqAP/hACJFeGlmAABJSSoACAAAAAEAEgEDAAEAAAAGAAAAAAAAAP/bAEMABgQFBgUEBgYFBgcHBggKEAoKCQkKFA4PDBAXFBgYFxQWFhodJR8aGyMcFhYgLCAjJicpKikZHy0wLSgwJSgpKP/bAEMBBwcHCggKEwoKEygaFhooKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKP/AABEIABQAKAMBIgACEQEDEQH/xAAVAAEBAAAAAAAAAAAAAAAAAAAACP/EABQQAQAAAAAAAAAAAAAAAAAAAAD/xAAVAQEBAAAAAAAAAAAAAAAAAAAABP/EABQRAQAAAAAAAAAAAAAAAAAAAAD/2gAMAwEAAhEDEQA/AJ+AWpAAAAAAAAAAH//Z',
      'base64',
    );
    // A 4x4 palette PNG with an empty tRNS chunk, which libpng ignores and the JS reader refuses.
    const emptyTransparency = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAMAAACeL25MAAAAA1BMVEURIjOi/NOrAAAAAHRSTlM2uXDMAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAC0lEQVQImWNgwAQAABQAAWX1h1kAAAAASUVORK5CYII=',
      'base64',
    );
    // A PNG claiming 1,000,000,000 x 20: past libvips' limit of 100,000,000 a side, a corrupt header to it.
    const huge = Buffer.from(await gradientPng(8, 8));
    huge.writeUInt32BE(1_000_000_000, 16);
    huge.writeUInt32BE(zlib.crc32(huge.subarray(12, 29)), 29);

    expect(await readHeader(turnedPng)).toMatchObject({ width: 20, height: 40 });
    expect(await readHeader(shadowedExif)).toMatchObject({ width: 40, height: 20 });
    expect(await readHeader(emptyTransparency)).toMatchObject({ format: 'png', width: 4, height: 4 });
    await expect(readHeader(huge)).rejects.toThrow(/corrupt header/);
    for (const [name, bytes] of [['png', turnedPng], ['jpeg', shadowedExif], ['png', emptyTransparency], ['png', huge]] as const) {
      expect(headerFromLeadingBytes(name, bytes), `${name} ${bytes.length} bytes`).toBeNull();
    }
    expect(await probe(write('turned.png', turnedPng), LIMIT)).toMatchObject({ width: 20, height: 40 });
    expect(await probe(write('shadowed.jpg', shadowedExif), LIMIT)).toMatchObject({ width: 40, height: 20 });
  });
});
