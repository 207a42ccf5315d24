import sharp, { type OutputInfo, type Sharp } from 'sharp';
import type { ConversionOptions, OutputFormat } from '../jobs/options.js';
import { PermanentError } from '../queue/errors.js';
import type { Semaphore } from '../queue/semaphore.js';
import { untilAborted } from '../queue/untilAborted.js';
import { removeFile } from '../storage/fsCalls.js';
import { conversionFailure, sharpDetail } from './conversionErrors.js';
import type { ImageHeader } from './header.js';
import { outputFormatInfo } from './outputFormat.js';
import { planResize } from './resizePlan.js';

/**
 * How strict decoding is. 'error' fails truncated files and decoder errors;
 * sharp's default 'warning' would also refuse the many phone JPEGs that carry
 * harmless warnings ("extraneous bytes before marker", sharp issues #1578,
 * #2416). The cost, written down: entropy data garbled mid-file, which
 * libjpeg only warns about, still decodes (with visible damage).
 */
const FAIL_ON = 'error' as const;

let decodingPipelines = 0;

/**
 * Pixel-decoding pipelines this process has started. Header reads are not
 * counted: they decode no pixel. Tests compare it with the images converted
 * to prove that each image is decoded exactly once per attempt.
 */
export function decodingPipelinesStarted(): number {
  return decodingPipelines;
}

export interface ConverterSettings {
  readonly webpQuality: number;
  readonly webpEffort: number;
  readonly maxInputPixels: number;
  /** The one semaphore bounding conversions in flight across all jobs. */
  readonly conversions: Semaphore;
}

/** What the submission read from an image's header and stored with its job: the conversion does not read it again. */
export type InputHeader = Pick<ImageHeader, 'format' | 'width' | 'height' | 'pages'>;

export interface ConvertTask {
  readonly input: string;
  readonly header: InputHeader;
  readonly output: string;
  /** The image's position in its job, for messages. */
  readonly index: number;
  readonly options: ConversionOptions;
  /** Stops the conversion at any point: waiting ends at once and libvips' work is abandoned. */
  readonly signal: AbortSignal;
  /**
   * Stops the conversion while it waits for a slot, in place of `signal`, so it
   * must fire whenever `signal` does (`signal` when not given); once libvips
   * has started, only `signal` stops it.
   */
  readonly queueSignal?: AbortSignal;
  /** Epoch ms when the attempt's time runs out; libvips is told to stop by then. */
  readonly deadline: number;
}

export interface ConvertedImage {
  readonly format: OutputFormat;
  /** Size of one frame. */
  readonly width: number;
  readonly height: number;
  readonly pages: number;
  readonly bytes: number;
  readonly scaledToFit: boolean;
}

/**
 * Converts image files to image files with sharp, one decode per image: the
 * header the submission read plans the resize, then a single pipeline
 * decodes, orients, resizes, converts to 8-bit sRGB and encodes straight to
 * the output file.
 */
export function createConverter(settings: ConverterSettings) {
  function encode(image: Sharp, format: OutputFormat, quality: number | undefined): Sharp {
    switch (format) {
      case 'webp':
        return image.webp({ quality: quality ?? settings.webpQuality, effort: settings.webpEffort });
      case 'avif':
        return image.avif({ quality });
      case 'jpeg':
        return image.jpeg({ quality });
      case 'png':
        // Lossless: quality has nothing to act on.
        return image.png();
    }
  }

  return {
    /**
     * Converts `task.input` to `task.output`. Throws a `JobFailure`: permanent
     * for images that cannot be converted, transient for time and I/O.
     */
    async convert(task: ConvertTask): Promise<ConvertedImage> {
      const { input, header, output, index, options, signal, queueSignal } = task;
      // Animations survive only into WebP; other outputs (and TIFF/HEIF pages) take the first frame.
      const animated = options.format === 'webp' && header.pages > 1 && (header.format === 'gif' || header.format === 'webp');
      const plan = planResize(header, options, outputFormatInfo[options.format].maxDimension);

      const release = await settings.conversions.acquire(queueSignal ?? signal);
      let work: Promise<OutputInfo>;
      try {
        const seconds = Math.max(1, Math.ceil((task.deadline - Date.now()) / 1_000));
        let image = sharp(input, { failOn: FAIL_ON, limitInputPixels: settings.maxInputPixels, animated })
          .timeout({ seconds })
          .autoOrient();
        if (plan.resize) image = image.resize(plan.resize);
        // JPEG has no alpha: transparent areas become white, not whatever colour hid under them
        // (sharp flattens only an image that has an alpha channel).
        if (options.format === 'jpeg') image = image.flatten({ background: '#ffffff' });
        // CMYK, 16-bit and greyscale inputs all leave as 8-bit sRGB.
        image = encode(image.toColourspace('srgb'), options.format, options.quality);
        decodingPipelines += 1;
        work = image.toFile(output);
      } catch (error) {
        release();
        throw new PermanentError('conversion_invalid', `image ${index}: ${sharpDetail(error, input, output)}`, { cause: error });
      }
      // The slot is given back when libvips has finished, not when we stop
      // waiting: an abandoned conversion still holds its pixels until then.
      work.then(release, release);

      let info: OutputInfo;
      try {
        info = await untilAborted(work, signal);
      } catch (error) {
        const removeOutput = (): Promise<void> => removeFile(output);
        if (signal.aborted) {
          // libvips may still be writing: remove its output once it stops.
          work.then(removeOutput, removeOutput).catch(() => undefined);
          throw signal.reason;
        }
        await removeOutput();
        throw conversionFailure(error, { input, output, index });
      }
      return {
        format: options.format,
        width: info.width,
        height: info.pageHeight ?? info.height,
        pages: info.pages ?? 1,
        bytes: info.size,
        scaledToFit: plan.scaledToFit,
      };
    },
  };
}
