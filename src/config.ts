import os from 'node:os';
import path from 'node:path';
import cron from 'node-cron';
import { oneEditApart } from './oneEditApart.js';

/**
 * The service's configuration, resolved once at start from the environment.
 * This module is the only reader of `process.env` for settings; everything
 * else receives a frozen `Config`.
 */
export interface Config {
  readonly host: string;
  readonly port: number;
  /** Root of the database (SQLite), temp files and local results. */
  readonly dataDir: string;
  /** The SQLite file, used when `databaseUrl` is null. */
  readonly dbPath: string;
  /**
   * A PostgreSQL connection string (`postgres://…`): jobs live there, shared
   * by every instance given the same one (and the same DATA_DIR, on a shared
   * volume). Null: the embedded SQLite file in DATA_DIR.
   */
  readonly databaseUrl: string | null;
  readonly tmpDir: string;
  readonly outputDir: string;
  /** Attempts in flight at once (the scheduler's semaphore). */
  readonly maxConcurrentJobs: number;
  /** Images of one job converted together, then delivered and released before the next batch. */
  readonly imageBatchSize: number;
  /** Per attempt; on expiry the attempt is aborted and counts as a transient failure. */
  readonly jobTimeoutMs: number;
  /**
   * How long a claimed job stays held without a heartbeat (renewed every
   * third of it): the time after which the jobs of an instance that died
   * are taken up by the others.
   */
  readonly leaseMs: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly webpQuality: number;
  readonly webpEffort: number;
  /** Conversions in flight across all jobs: the bound on native (libvips) memory. */
  readonly convertConcurrency: number;
  readonly maxCompletedJobs: number;
  readonly completedTtlMs: number;
  readonly sweepCron: string;
  readonly maxUploadBytes: number;
  readonly maxImagesPerJob: number;
  readonly maxInputPixels: number;
  readonly maxQueuedJobs: number;
  readonly minFreeDiskBytes: number;
  readonly apiToken: string | undefined;
  readonly shutdownGraceMs: number;
  readonly sqliteSynchronous: 'FULL' | 'NORMAL';
  /** Lower-cased host names or IP literals HTTP destinations may target; undefined when unset. */
  readonly uploadAllowedHosts: readonly string[] | undefined;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** A setting that stops the start: its message is the one line printed before the process exits. */
export class SettingError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A value the service does not accept. */
export class ConfigError extends SettingError {
  constructor(variable: string, value: string, allowed: string) {
    super(`${variable}=${JSON.stringify(value)} is invalid: expected ${allowed}`);
  }
}

/** A valid value the machine cannot honour: a folder that cannot be made, a port in use, a name that does not resolve. */
export class UnusableSettingError extends SettingError {
  constructor(variable: string, value: string, cause: unknown) {
    super(`${variable}=${JSON.stringify(value)} cannot be used: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Every variable the service reads: `raw` takes no other name, so the list cannot fall behind. */
const settingNames = [
  'HOST', 'PORT', 'DATA_DIR', 'MAX_CONCURRENT_JOBS', 'IMAGE_BATCH_SIZE', 'JOB_TIMEOUT_MS', 'MAX_ATTEMPTS',
  'RETRY_BASE_MS', 'RETRY_MAX_MS', 'WEBP_QUALITY', 'WEBP_EFFORT', 'CONVERT_CONCURRENCY', 'MAX_COMPLETED_JOBS',
  'COMPLETED_TTL_MS', 'SWEEP_CRON', 'MAX_UPLOAD_BYTES', 'MAX_IMAGES_PER_JOB', 'MAX_INPUT_PIXELS', 'MAX_QUEUED_JOBS',
  'MIN_FREE_DISK_BYTES', 'API_TOKEN', 'SHUTDOWN_GRACE_MS', 'SQLITE_SYNCHRONOUS', 'UPLOAD_ALLOWED_HOSTS', 'LOG_LEVEL',
  'DATABASE_URL', 'LEASE_MS',
] as const;
type SettingName = (typeof settingNames)[number];

type Env = Readonly<Record<string, string | undefined>>;

/**
 * A variable's value, trimmed; undefined when unset. Set but empty (`PORT=`
 * in a .env) is refused rather than taken as the default: it is more often a
 * value lost on the way than a request for the default.
 */
function raw(env: Env, name: SettingName): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new ConfigError(name, value, `a value (unset ${name} for its default)`);
  return value.trim();
}

function integer(env: Env, name: SettingName, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const allowed = `an integer from ${min} to ${max}`;
  if (!/^-?\d+$/.test(value)) throw new ConfigError(name, value, allowed);
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) throw new ConfigError(name, value, allowed);
  return parsed;
}

function oneOf<T extends string>(env: Env, name: SettingName, fallback: T, allowed: readonly T[]): T {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const match = allowed.find((candidate) => candidate.toLowerCase() === value.toLowerCase());
  if (match === undefined) throw new ConfigError(name, value, `one of ${allowed.join(', ')}`);
  return match;
}

function hostList(env: Env, name: SettingName): string[] | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  const hosts = value.split(',').map((host) => host.trim().toLowerCase()).filter(Boolean);
  const valid = /^(\[[0-9a-f:.]+\]|[0-9a-f:]+:[0-9a-f:.]*|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/;
  const bad = hosts.find((host) => !valid.test(host));
  if (hosts.length === 0 || bad !== undefined) {
    throw new ConfigError(name, value, 'a comma-separated list of host names or IP addresses, without scheme or port');
  }
  return hosts.map((host) => host.replace(/^\[(.*)\]$/, '$1'));
}

/** A PostgreSQL connection string, or null when unset; anything else is refused, its password hidden. */
function databaseUrl(env: Env): string | null {
  const value = raw(env, 'DATABASE_URL');
  if (value === undefined) return null;
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (url === null || !['postgres:', 'postgresql:'].includes(url.protocol)) {
    const shown = url === null || url.password === '' ? value : value.replace(`:${url.password}@`, ':<redacted>@');
    throw new ConfigError('DATABASE_URL', shown, 'a PostgreSQL URL such as postgres://user:password@host:5432/database (unset it for SQLite in DATA_DIR)');
  }
  return value;
}

/** Parses and validates the environment; throws `ConfigError` naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const dataDir = path.resolve(raw(env, 'DATA_DIR') ?? './data');

  const apiToken = raw(env, 'API_TOKEN');
  if (apiToken !== undefined && apiToken.length < 16) {
    throw new ConfigError('API_TOKEN', '<redacted>', 'at least 16 characters');
  }

  const sweepCron = raw(env, 'SWEEP_CRON') ?? '*/5 * * * *';
  if (!cron.validate(sweepCron)) throw new ConfigError('SWEEP_CRON', sweepCron, 'a cron expression such as */5 * * * *');

  const host = raw(env, 'HOST') ?? '127.0.0.1';
  const retryBaseMs = integer(env, 'RETRY_BASE_MS', 5_000, 0);
  const retryMaxMs = integer(env, 'RETRY_MAX_MS', 300_000, 0);
  if (retryMaxMs < retryBaseMs) {
    throw new ConfigError('RETRY_MAX_MS', String(retryMaxMs), `a number of milliseconds not below RETRY_BASE_MS (${retryBaseMs})`);
  }

  return Object.freeze({
    host,
    port: integer(env, 'PORT', 8080, 0, 65_535),
    dataDir,
    dbPath: path.join(dataDir, 'jobs.db'),
    databaseUrl: databaseUrl(env),
    tmpDir: path.join(dataDir, 'tmp'),
    outputDir: path.join(dataDir, 'output'),
    maxConcurrentJobs: integer(env, 'MAX_CONCURRENT_JOBS', 5, 1, 1_000),
    imageBatchSize: integer(env, 'IMAGE_BATCH_SIZE', 5, 1, 100),
    jobTimeoutMs: integer(env, 'JOB_TIMEOUT_MS', 1_800_000, 100),
    // A heartbeat a third of a second apart at the least; at most an hour, so a dead instance's jobs come back that day.
    leaseMs: integer(env, 'LEASE_MS', 30_000, 1_000, 3_600_000),
    maxAttempts: integer(env, 'MAX_ATTEMPTS', 3, 1, 100),
    retryBaseMs,
    retryMaxMs,
    webpQuality: integer(env, 'WEBP_QUALITY', 80, 1, 100),
    webpEffort: integer(env, 'WEBP_EFFORT', 4, 0, 6),
    convertConcurrency: integer(env, 'CONVERT_CONCURRENCY', Math.max(1, os.availableParallelism()), 1, 256),
    maxCompletedJobs: integer(env, 'MAX_COMPLETED_JOBS', 100, 0),
    completedTtlMs: integer(env, 'COMPLETED_TTL_MS', 86_400_000, 0),
    sweepCron,
    maxUploadBytes: integer(env, 'MAX_UPLOAD_BYTES', 52_428_800, 1),
    maxImagesPerJob: integer(env, 'MAX_IMAGES_PER_JOB', 20, 1, 1_000),
    maxInputPixels: integer(env, 'MAX_INPUT_PIXELS', 50_000_000, 1),
    maxQueuedJobs: integer(env, 'MAX_QUEUED_JOBS', 10_000, 1),
    minFreeDiskBytes: integer(env, 'MIN_FREE_DISK_BYTES', 268_435_456, 0),
    apiToken,
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 30_000, 0),
    sqliteSynchronous: oneOf(env, 'SQLITE_SYNCHRONOUS', 'FULL', ['FULL', 'NORMAL'] as const),
    uploadAllowedHosts: hostList(env, 'UPLOAD_ALLOWED_HOSTS'),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  });
}

/** A set variable one edit away from a setting's name: most likely that setting, misspelled, and so not applied. */
export interface MisspelledSetting {
  readonly name: string;
  readonly meant: SettingName;
}

/** The variables of `env` that look like misspelled settings, for a warning at start. */
export function misspelledSettings(env: Env = process.env): MisspelledSetting[] {
  const found: MisspelledSetting[] = [];
  for (const name of Object.keys(env)) {
    const meant = settingNames.find((known) => oneEditApart(name, known));
    if (meant !== undefined) found.push({ name, meant });
  }
  return found;
}
