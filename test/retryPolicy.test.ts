import { describe, expect, it } from 'vitest';
import { classifyError, PermanentError, TransientError } from '../src/queue/errors.js';
import { backoffMs, decideRetry } from '../src/queue/retryPolicy.js';
import { DiskFullError } from '../src/storage/diskFull.js';

const settings = { retryBaseMs: 5_000, retryMaxMs: 300_000 };

describe('backoffMs', () => {
  it('doubles from the base with up to 100% jitter, capped at the maximum', () => {
    expect(backoffMs(1, settings, () => 0)).toBe(5_000);
    expect(backoffMs(1, settings, () => 0.5)).toBe(7_500);
    expect(backoffMs(2, settings, () => 0)).toBe(10_000);
    expect(backoffMs(3, settings, () => 0.999)).toBe(39_980);
    expect(backoffMs(7, settings, () => 0)).toBe(300_000);
    expect(backoffMs(60, settings, () => 0.9)).toBe(300_000);
  });

  it('stays within [base, max] for any draw', () => {
    for (let attempt = 1; attempt < 40; attempt++) {
      for (const draw of [0, 0.25, 0.5, 0.999]) {
        const delay = backoffMs(attempt, settings, () => draw);
        expect(delay).toBeGreaterThanOrEqual(settings.retryBaseMs);
        expect(delay).toBeLessThanOrEqual(settings.retryMaxMs);
      }
    }
  });
});

describe('decideRetry', () => {
  const transient = { permanent: false, outlastsAttempts: false, message: 'http://127.0.0.1:1/x answered 500' };

  it('retries a transient failure while attempts remain, and its message says when', () => {
    expect(decideRetry(transient, { attempts: 1, maxAttempts: 3 }, 1_000, settings, () => 0)).toEqual({
      retryAt: 6_000,
      message: 'http://127.0.0.1:1/x answered 500; attempt 1 of 3, retrying in 5 s',
    });
    expect(decideRetry(transient, { attempts: 2, maxAttempts: 3 }, 1_000, settings, () => 0)).toMatchObject({ retryAt: 11_000 });
  });

  it('retries a full disk past the last attempt, its delay still growing to the maximum', () => {
    const full = classifyError(new DiskFullError(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })));
    expect(full).toMatchObject({ code: 'disk_full', permanent: false, outlastsAttempts: true });
    expect(decideRetry(full, { attempts: 3, maxAttempts: 3 }, 1_000, settings, () => 0)).toEqual({
      retryAt: 21_000,
      message: `${full.message}; attempt 3, retrying in 20 s: this fault does not use up the job's 3 attempts`,
    });
    expect(decideRetry(full, { attempts: 12, maxAttempts: 3 }, 1_000, settings, () => 0)).toMatchObject({ retryAt: 301_000 });
  });

  it('fails on the last attempt and on any permanent failure, with a message that promises no retry', () => {
    expect(decideRetry(transient, { attempts: 3, maxAttempts: 3 }, 1_000, settings)).toEqual({
      retryAt: null,
      message: 'http://127.0.0.1:1/x answered 500; attempt 3 of 3, none left',
    });
    expect(decideRetry({ permanent: true, outlastsAttempts: false, message: 'bad header' }, { attempts: 1, maxAttempts: 3 }, 1_000, settings)).toEqual({ retryAt: null, message: 'bad header' });
  });
});

describe('classifyError', () => {
  it('keeps the class and code of job failures', () => {
    expect(classifyError(new PermanentError('image_corrupt', 'bad header'))).toEqual({ code: 'image_corrupt', message: 'bad header', permanent: true, outlastsAttempts: false });
    expect(classifyError(new TransientError('destination_5xx', '503'))).toEqual({ code: 'destination_5xx', message: '503', permanent: false, outlastsAttempts: false });
  });

  it('treats unknown errors as transient, using a system error code when there is one', () => {
    const enospc = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    expect(classifyError(enospc)).toEqual({ code: 'enospc', message: 'no space left on device', permanent: false, outlastsAttempts: false });
    expect(classifyError(new TypeError('x is not a function'))).toMatchObject({ code: 'internal_error', permanent: false });
  });

  it('records values that are not Errors', () => {
    expect(classifyError('plain string')).toMatchObject({ code: 'non_error_thrown', message: 'a non-Error value was thrown: plain string' });
    expect(classifyError({ reason: 42 })).toMatchObject({ message: 'a non-Error value was thrown: {"reason":42}' });
    expect(classifyError(undefined)).toMatchObject({ code: 'non_error_thrown' });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(classifyError(cyclic).code).toBe('non_error_thrown');
  });
});
