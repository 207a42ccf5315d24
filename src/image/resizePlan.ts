import type { ResizeOptions } from 'sharp';
import type { Fit } from '../jobs/options.js';

export interface Size {
  readonly width: number;
  readonly height: number;
}

/** The client's resize options; both sides absent means "keep the size". */
export interface ResizeRequest {
  readonly width?: number | undefined;
  readonly height?: number | undefined;
  readonly fit?: Fit | undefined;
}

export interface ResizePlan {
  /** What to hand to sharp's `resize`; null keeps the input size. */
  readonly resize: ResizeOptions | null;
  /** The expected output size of one frame. */
  readonly size: Size;
  /** True when the output had to shrink to stay within the format's limit. */
  readonly scaledToFit: boolean;
}

/** sharp's default fit when both sides are given. */
const DEFAULT_FIT: Fit = 'cover';

/**
 * The size sharp produces for `request` with `withoutEnlargement` (always
 * set here: an image service that upscales on request would let one small
 * upload cost 100000 x 100000 pixels of memory). `input` is one frame,
 * EXIF orientation applied. Matches sharp 0.35's rules; a test checks it
 * against real output for every fit.
 */
export function predictSize(input: Size, request: ResizeRequest): Size {
  const { width: w0, height: h0 } = input;
  const scaled = (factor: number): Size => ({
    width: Math.max(1, Math.round(w0 * factor)),
    height: Math.max(1, Math.round(h0 * factor)),
  });
  const { width, height } = request;
  if (width === undefined && height === undefined) return input;
  if (width === undefined) return scaled(Math.min(1, (height as number) / h0));
  if (height === undefined) return scaled(Math.min(1, width / w0));
  switch (request.fit ?? DEFAULT_FIT) {
    case 'contain':
      // Pads to the box, even around a smaller image.
      return { width, height };
    case 'fill':
      return { width: Math.min(width, w0), height: Math.min(height, h0) };
    case 'inside':
      return scaled(Math.min(1, width / w0, height / h0));
    case 'outside':
      return scaled(Math.min(1, Math.max(width / w0, height / h0)));
    case 'cover': {
      const covering = scaled(Math.min(1, Math.max(width / w0, height / h0)));
      return { width: Math.min(width, covering.width), height: Math.min(height, covering.height) };
    }
  }
}

/**
 * Plans the resize of one image: the client's request as given when its
 * output fits within `maxDimension` a side, otherwise the same result scaled
 * down to fit (the job then records `scaledToFit`). Fits whose output is the
 * requested box (cover, contain, fill) keep their fit on a shrunken box, so
 * the crop or padding the client asked for survives; the others become a
 * proportional resize of the longer side to the limit.
 */
export function planResize(input: Size, request: ResizeRequest, maxDimension: number): ResizePlan {
  const size = predictSize(input, request);
  const asked = request.width !== undefined || request.height !== undefined;
  const requested: ResizeOptions | null = asked
    ? { width: request.width, height: request.height, fit: request.fit ?? DEFAULT_FIT, withoutEnlargement: true }
    : null;
  if (size.width <= maxDimension && size.height <= maxDimension) return { resize: requested, size, scaledToFit: false };

  const factor = Math.min(maxDimension / size.width, maxDimension / size.height);
  const boxed = request.width !== undefined && request.height !== undefined && ['cover', 'contain', 'fill'].includes(request.fit ?? DEFAULT_FIT);
  if (boxed) {
    const box = { width: Math.max(1, Math.floor(size.width * factor)), height: Math.max(1, Math.floor(size.height * factor)) };
    return { resize: { ...box, fit: request.fit ?? DEFAULT_FIT, withoutEnlargement: true }, size: box, scaledToFit: true };
  }
  // Only the longer side is given: sharp derives the other, which a rounded-down box would cut further.
  const longer = size.width >= size.height ? { width: maxDimension } : { height: maxDimension };
  return { resize: { ...longer, withoutEnlargement: true }, size: predictSize(input, longer), scaledToFit: true };
}
