import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createConverter, decodingPipelinesStarted, type ConvertTask } from '../src/image/convert.js';
import { readHeader } from '../src/image/header.js';
import type { ConversionOptions } from '../src/jobs/options.js';
import { JobFailure } from '../src/queue/errors.js';
import { Semaphore } from '../src/queue/semaphore.js';
import { waitFor } from './support/wait.js';
import {
  alphaPng, animatedGif, animatedWebp, cmykJpeg, corruptHeaderJpeg, exifRotatedJpeg, gradient, gradientJpeg, noiseJpeg,
  sixteenBitPng, truncated,
} from './support/images.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'image-convert-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function input(bytes: Buffer): string {
  counter += 1;
  const file = path.join(dir, `in-${counter}`);
  fs.writeFileSync(file, bytes);
  return file;
}

const settings = { webpQuality: 80, webpEffort: 4, maxInputPixels: 50_000_000 };
const conversions = new Semaphore(2);
const converter = createConverter({ ...settings, conversions });

/** A conversion of `file` as the pipeline asks for it, with the header its submission stored (`extra.header` when there is none to read). */
async function task(file: string, options: Partial<ConversionOptions> = {}, extra: Partial<ConvertTask> = {}): Promise<ConvertTask> {
  counter += 1;
  return {
    input: file,
    header: extra.header ?? (await readHeader(file)),
    output: path.join(dir, `out-${counter}`),
    index: 0,
    options: { format: 'webp', ...options },
    signal: new AbortController().signal,
    deadline: Date.now() + 60_000,
    ...extra,
  };
}

async function failure(promise: Promise<unknown>): Promise<JobFailure> {
  const thrown = await promise.then(() => null, (error: unknown) => error);
  expect(thrown).toBeInstanceOf(JobFailure);
  return thrown as JobFailure;
}

describe('conversion', () => {
  it('makes WebP at quality 80 by default: the same bytes as sharp given quality 80', async () => {
    const source = await gradientJpeg(320, 240);
    const job = await task(input(source));
    const result = await converter.convert(job);
    const reference = await sharp(source).webp({ quality: 80, effort: 4 }).toBuffer();
    const metadata = await sharp(job.output).metadata();
    expect(result).toEqual({ format: 'webp', width: 320, height: 240, pages: 1, bytes: reference.length, scaledToFit: false });
    expect({ format: metadata.format, width: metadata.width, height: metadata.height }).toEqual({ format: 'webp', width: 320, height: 240 });
    expect(fs.readFileSync(job.output).equals(reference)).toBe(true);
  });

  it('decodes each image exactly once: one pixel pipeline per conversion, none for header reads', async () => {
    const before = decodingPipelinesStarted();
    const files = await Promise.all([gradientJpeg(64, 48), alphaPng(30, 30), animatedGif(20, 20, 3)].map(async (made) => input(await made)));
    for (const file of files) await converter.convert(await task(file));
    expect(decodingPipelinesStarted() - before).toBe(files.length);
  });

  it('applies EXIF orientation: a 40x20 JPEG tagged orientation 6 comes out 20x40', async () => {
    const job = await task(input(await exifRotatedJpeg(40, 20, 6)));
    expect(await converter.convert(job)).toMatchObject({ width: 20, height: 40 });
    expect(await sharp(job.output).metadata()).toMatchObject({ width: 20, height: 40 });
  });

  it('turns CMYK into 8-bit sRGB', async () => {
    const file = input(await cmykJpeg(40, 30));
    for (const format of ['webp', 'jpeg'] as const) {
      const job = await task(file, { format });
      await converter.convert(job);
      expect(await sharp(job.output).metadata()).toMatchObject({ space: 'srgb', depth: 'uchar', channels: 3 });
    }
  });

  it('turns a 16-bit PNG into an 8-bit one', async () => {
    const job = await task(input(await sixteenBitPng(40, 30)), { format: 'png' });
    await converter.convert(job);
    expect(await sharp(job.output).metadata()).toMatchObject({ format: 'png', space: 'srgb', depth: 'uchar', bitsPerSample: 8 });
  });

  it('keeps transparency in WebP, and flattens it onto white in JPEG', async () => {
    const file = input(await alphaPng(40, 30));
    const webp = await task(file);
    await converter.convert(webp);
    expect(await sharp(webp.output).metadata()).toMatchObject({ hasAlpha: true });
    const jpeg = await task(file, { format: 'jpeg' });
    await converter.convert(jpeg);
    const { data } = await sharp(jpeg.output).raw().toBuffer({ resolveWithObject: true });
    // The transparent left half: white, not the gradient that hid under it.
    expect([...data.subarray(0, 3)].every((value) => value > 245)).toBe(true);
  });

  it('keeps an animated GIF or WebP animated in WebP, frame size recorded', async () => {
    for (const made of [animatedGif(24, 16, 5), animatedWebp(24, 16, 4)]) {
      const job = await task(input(await made));
      const result = await converter.convert(job);
      expect(result).toMatchObject({ width: 24, height: 16 });
      expect(result.pages).toBeGreaterThan(1);
      const metadata = await sharp(job.output, { animated: true }).metadata();
      expect(metadata.pages).toBeGreaterThan(1);
      expect(metadata.pageHeight).toBe(16);
    }
  });

  it('takes the first frame of an animation for JPEG, PNG and AVIF', async () => {
    const file = input(await animatedGif(24, 16, 5));
    for (const format of ['jpeg', 'png', 'avif'] as const) {
      const job = await task(file, { format });
      expect(await converter.convert(job)).toMatchObject({ format, width: 24, height: 16, pages: 1 });
    }
  });

  it('honours format, quality, width, height and fit, never enlarging', async () => {
    const file = input(await gradientJpeg(400, 300));
    expect(await converter.convert(await task(file, { format: 'avif', width: 100 }))).toMatchObject({ format: 'avif', width: 100, height: 75 });
    expect(await converter.convert(await task(file, { format: 'jpeg', width: 50, height: 50, fit: 'cover' }))).toMatchObject({ width: 50, height: 50 });
    expect(await converter.convert(await task(file, { format: 'png', width: 100, height: 100, fit: 'inside' }))).toMatchObject({ width: 100, height: 75 });
    expect(await converter.convert(await task(file, { width: 4000 }))).toMatchObject({ width: 400, height: 300 });
    const low = await converter.convert(await task(file, { quality: 10 }));
    const high = await converter.convert(await task(file, { quality: 95 }));
    expect(low.bytes).toBeLessThan(high.bytes);
  });

  it('scales an image wider than WebP allows down to fit, and says so', async () => {
    const file = input(await gradient(20_000, 10).png().toBuffer());
    const job = await task(file);
    const result = await converter.convert(job);
    expect(result).toMatchObject({ width: 16_383, height: 8, scaledToFit: true });
    expect(await sharp(job.output).metadata()).toMatchObject({ format: 'webp', width: 16_383 });
    expect(await converter.convert(await task(file, { format: 'jpeg' }))).toMatchObject({ width: 20_000, scaledToFit: false });
  });

  it('fails truncated and corrupt images as permanent image_corrupt, leaving no output', async () => {
    const photo = await noiseJpeg(300, 200);
    // What the submission stored when the bytes were whole.
    const header = { format: 'jpeg', width: 300, height: 200, pages: 1 };
    for (const bytes of [truncated(photo), corruptHeaderJpeg(), truncated(await alphaPng(200, 200), 0.6)]) {
      const job = await task(input(bytes), {}, { header });
      const error = await failure(converter.convert(job));
      expect({ code: error.code, permanent: error.permanent }).toEqual({ code: 'image_corrupt', permanent: true });
      expect(fs.existsSync(job.output)).toBe(false);
      expect(error.message).not.toContain(dir);
    }
  });

  it('fails images above MAX_INPUT_PIXELS as image_too_large, and non-images as image_unsupported', async () => {
    const small = createConverter({ ...settings, maxInputPixels: 1_000, conversions });
    expect(await failure(small.convert(await task(input(await gradientJpeg(40, 30)))))).toMatchObject({ code: 'image_too_large', permanent: true });
    const header = { format: 'jpeg', width: 40, height: 30, pages: 1 };
    expect(await failure(converter.convert(await task(input(Buffer.from('just text')), {}, { header })))).toMatchObject({ code: 'image_unsupported', permanent: true });
  });

  it('stops waiting at once when aborted, but holds the conversion slot until libvips has finished', async () => {
    const slots = new Semaphore(1);
    const slow = createConverter({ ...settings, webpEffort: 6, conversions: slots });
    const controller = new AbortController();
    const job = await task(input(await noiseJpeg(1_600, 1_200)), {}, { signal: controller.signal });
    const converting = slow.convert(job);
    await waitFor(() => slots.inUse === 1);
    const reason = new Error('attempt aborted');
    controller.abort(reason);
    await expect(converting).rejects.toBe(reason);
    expect(slots.inUse).toBe(1); // rejected while libvips still works: the attempt did not wait for it
    await waitFor(() => slots.inUse === 0, 20_000);
    await waitFor(() => !fs.existsSync(job.output));
  });
});
