import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createMemorySampler } from '../src/ops/memorySampler.js';
import { SampleRing } from '../src/ops/sampleRing.js';
import { jobInState, testDb } from './support/db.js';
import { waitFor } from './support/wait.js';

describe('sample ring', () => {
  it('holds at most its capacity, oldest first, overwriting the oldest', () => {
    const ring = new SampleRing<number>(4);
    expect(ring.toArray()).toEqual([]);
    ring.push(1);
    ring.push(2);
    expect(ring.toArray()).toEqual([1, 2]);
    for (let value = 3; value <= 1_000; value += 1) ring.push(value);
    expect(ring.length).toBe(4);
    expect(ring.toArray()).toEqual([997, 998, 999, 1_000]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new SampleRing(0)).toThrow(RangeError);
    expect(() => new SampleRing(2.5)).toThrow(RangeError);
  });
});

describe('memory sampler', () => {
  it('samples memory and queue depth on a timer into a ring that never grows past its capacity', async () => {
    const { db, store } = testDb();
    await jobInState(db, store, 'queued');
    await jobInState(db, store, 'queued');
    await jobInState(db, store, 'running');
    const sampler = createMemorySampler({ store, log: pino({ level: 'silent' }), intervalMs: 2, capacity: 5 });

    await sampler.start();
    expect(sampler.samples()).toHaveLength(1); // the first sample is taken at once
    const first = sampler.samples()[0];
    await waitFor(() => sampler.samples()[0] !== first, 5_000); // the ring went round and overwrote it
    sampler.stop();

    const samples = sampler.samples();
    expect(samples).toHaveLength(5);
    expect(samples.map((sample) => sample.at)).toEqual([...samples.map((sample) => sample.at)].sort((a, b) => a - b));
    for (const sample of samples) {
      expect(sample).toMatchObject({ queued: 2, running: 1 });
      expect(sample.rssBytes).toBeGreaterThan(sample.heapUsedBytes);
      expect(sample.heapTotalBytes).toBeGreaterThanOrEqual(sample.heapUsedBytes);
      expect(sample.externalBytes).toBeGreaterThan(0);
    }
  });

  it('stops sampling when stopped', async () => {
    const { store } = testDb();
    const sampler = createMemorySampler({ store, log: pino({ level: 'silent' }), intervalMs: 2, capacity: 100 });
    await sampler.start();
    sampler.stop();
    const taken = sampler.samples().length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(sampler.samples()).toHaveLength(taken);
  });
});
