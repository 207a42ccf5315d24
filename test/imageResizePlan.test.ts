import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { planResize, predictSize } from '../src/image/resizePlan.js';
import { fits } from '../src/jobs/options.js';

const WEBP = 16_383;

describe('predictSize', () => {
  it('matches the size sharp really produces, for every fit, smaller and larger boxes, one or both sides', async () => {
    const input = { width: 90, height: 60 };
    const requests = [
      {}, { width: 45 }, { height: 30 }, { width: 200 }, { height: 200 },
      ...fits.flatMap((fit) => [
        { width: 45, height: 45, fit }, { width: 200, height: 50, fit }, { width: 30, height: 120, fit }, { width: 300, height: 300, fit },
      ]),
    ];
    for (const request of requests) {
      const image = sharp({ create: { ...input, channels: 3, background: '#246' } });
      const resized = 'width' in request || 'height' in request ? image.resize({ ...request, withoutEnlargement: true }) : image;
      const { info } = await resized.png().toBuffer({ resolveWithObject: true });
      expect({ request, size: predictSize(input, request) }).toEqual({ request, size: { width: info.width, height: info.height } });
    }
  });
});

describe('planResize', () => {
  it('passes a request through unchanged when its output fits the format', () => {
    expect(planResize({ width: 4000, height: 3000 }, {}, WEBP)).toEqual({ resize: null, size: { width: 4000, height: 3000 }, scaledToFit: false });
    expect(planResize({ width: 4000, height: 3000 }, { width: 800 }, WEBP)).toEqual({
      resize: { width: 800, height: undefined, fit: 'cover', withoutEnlargement: true },
      size: { width: 800, height: 600 },
      scaledToFit: false,
    });
  });

  it('scales an image wider than WebP allows down to 16383 wide, keeping its proportions', () => {
    expect(planResize({ width: 20_000, height: 10 }, {}, WEBP)).toEqual({
      resize: { width: 16_383, withoutEnlargement: true },
      size: { width: 16_383, height: 8 },
      scaledToFit: true,
    });
    expect(planResize({ width: 100, height: 40_000 }, { width: 50 }, WEBP).size).toEqual({ width: 41, height: 16_383 });
  });

  it('keeps a cover, contain or fill request on a box shrunk to fit', () => {
    for (const fit of ['cover', 'contain', 'fill'] as const) {
      const plan = planResize({ width: 30_000, height: 30_000 }, { width: 20_000, height: 10_000, fit }, WEBP);
      expect(plan).toEqual({ resize: { width: 16_383, height: 8_191, fit, withoutEnlargement: true }, size: { width: 16_383, height: 8_191 }, scaledToFit: true });
    }
  });

  it('does not call an output scaled when the format would have taken it', () => {
    expect(planResize({ width: 16_383, height: 16_383 }, {}, WEBP).scaledToFit).toBe(false);
    expect(planResize({ width: 20_000, height: 10 }, {}, 65_500).scaledToFit).toBe(false);
  });
});
