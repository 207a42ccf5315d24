import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, misspelledSettings } from '../src/config.js';

describe('loadConfig', () => {
  it('fills every setting with the documented default', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      dataDir: path.resolve('data'),
      dbPath: path.resolve('data/jobs.db'),
      tmpDir: path.resolve('data/tmp'),
      outputDir: path.resolve('data/output'),
      maxConcurrentJobs: 5,
      imageBatchSize: 5,
      jobTimeoutMs: 1_800_000,
      leaseMs: 30_000,
      maxAttempts: 3,
      retryBaseMs: 5_000,
      retryMaxMs: 300_000,
      webpQuality: 80,
      webpEffort: 4,
      maxCompletedJobs: 100,
      completedTtlMs: 86_400_000,
      sweepCron: '*/5 * * * *',
      maxUploadBytes: 52_428_800,
      maxImagesPerJob: 20,
      maxInputPixels: 50_000_000,
      maxQueuedJobs: 10_000,
      minFreeDiskBytes: 268_435_456,
      apiToken: undefined,
      shutdownGraceMs: 30_000,
      sqliteSynchronous: 'FULL',
      uploadAllowedHosts: undefined,
      databaseUrl: null,
    });
    expect(config.convertConcurrency).toBeGreaterThanOrEqual(1);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('takes a PostgreSQL DATABASE_URL and refuses anything else, without printing its password', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://app:secret@db.internal:5432/jobs' }).databaseUrl).toBe('postgres://app:secret@db.internal:5432/jobs');
    expect(loadConfig({ DATABASE_URL: 'postgresql:///jobs?host=/var/run/postgresql' }).databaseUrl).toBe('postgresql:///jobs?host=/var/run/postgresql');
    expect(() => loadConfig({ DATABASE_URL: 'mysql://app:secret@db/jobs' })).toThrow(/^DATABASE_URL="mysql:\/\/app:<redacted>@db\/jobs" is invalid: expected a PostgreSQL URL/);
    expect(() => loadConfig({ DATABASE_URL: 'jobs.db' })).toThrow(/DATABASE_URL="jobs.db" is invalid/);
  });

  it('reads values from the environment', () => {
    const config = loadConfig({
      PORT: '9000',
      DATA_DIR: '/srv/jobs',
      SQLITE_SYNCHRONOUS: 'normal',
      UPLOAD_ALLOWED_HOSTS: 'Uploads.example.com, 127.0.0.1,[::1]',
      API_TOKEN: 'a-long-enough-secret',
      LEASE_MS: '3000',
    });
    expect(config).toMatchObject({
      port: 9000,
      leaseMs: 3_000,
      dbPath: '/srv/jobs/jobs.db',
      sqliteSynchronous: 'NORMAL',
      uploadAllowedHosts: ['uploads.example.com', '127.0.0.1', '::1'],
      apiToken: 'a-long-enough-secret',
    });
  });

  it.each([
    ['PORT', 'eighty', 'PORT="eighty" is invalid: expected an integer from 0 to 65535'],
    ['PORT', '70000', 'PORT="70000" is invalid: expected an integer from 0 to 65535'],
    ['MAX_CONCURRENT_JOBS', '0', 'MAX_CONCURRENT_JOBS="0" is invalid: expected an integer from 1 to 1000'],
    ['LEASE_MS', '500', 'LEASE_MS="500" is invalid: expected an integer from 1000 to 3600000'],
    ['WEBP_QUALITY', '101', 'WEBP_QUALITY="101" is invalid: expected an integer from 1 to 100'],
    ['WEBP_EFFORT', '1.5', 'WEBP_EFFORT="1.5" is invalid: expected an integer from 0 to 6'],
    ['SQLITE_SYNCHRONOUS', 'OFF', 'SQLITE_SYNCHRONOUS="OFF" is invalid: expected one of FULL, NORMAL'],
    ['SWEEP_CRON', 'every five minutes', 'SWEEP_CRON="every five minutes" is invalid: expected a cron expression such as */5 * * * *'],
    ['UPLOAD_ALLOWED_HOSTS', 'http://x.com/', 'UPLOAD_ALLOWED_HOSTS="http://x.com/" is invalid'],
    ['API_TOKEN', 'short', 'API_TOKEN="<redacted>" is invalid: expected at least 16 characters'],
  ])('refuses %s=%s with one line naming the variable, the value and what is allowed', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });

  it('refuses a retry maximum below the base', () => {
    expect(() => loadConfig({ RETRY_BASE_MS: '1000', RETRY_MAX_MS: '10' })).toThrow(/RETRY_MAX_MS="10" is invalid/);
  });

  it('refuses a variable set to nothing, naming it', () => {
    expect(() => loadConfig({ MAX_ATTEMPTS: ' ' })).toThrow('MAX_ATTEMPTS=" " is invalid: expected a value (unset MAX_ATTEMPTS for its default)');
  });
});

describe('misspelledSettings', () => {
  it('finds variables one insertion, deletion, substitution or swap away from a setting', () => {
    const env = { MAX_CONCURERNT_JOBS: '3', PROT: '1', DATADIR: 'x', MAX_ATTEMPT: '2', WEBP_QUALITYY: '70', LOG_LEVEL: 'info', HOME: '/root', PATH: '/bin' };
    expect(misspelledSettings(env)).toEqual([
      { name: 'MAX_CONCURERNT_JOBS', meant: 'MAX_CONCURRENT_JOBS' },
      { name: 'PROT', meant: 'PORT' },
      { name: 'DATADIR', meant: 'DATA_DIR' },
      { name: 'MAX_ATTEMPT', meant: 'MAX_ATTEMPTS' },
      { name: 'WEBP_QUALITYY', meant: 'WEBP_QUALITY' },
    ]);
  });

  it('leaves settings spelled right and names two edits away alone', () => {
    expect(misspelledSettings({ PORT: '1', MAX_CONCURRENT_JOBS: '2', MAX_CONCURENT_JOB: '3', HOSTNAME: 'vm', PWD: '/' })).toEqual([]);
  });
});
