import { z } from 'zod';
import { jobStatuses } from '../../jobs/states.js';
import { shownImageStatuses } from '../jobView.js';
import { jobOptionsSchema } from '../../jobs/options.js';

/**
 * The JSON Schemas (2020-12, as OpenAPI 3.1 uses) of every JSON body the API
 * answers. `required` lists what is always present; a field that may be
 * absent or `null` says so.
 */

type Schema = Record<string, unknown>;

const integer = { type: 'integer' };
const number = { type: 'number' };
const string = { type: 'string' };
const boolean = { type: 'boolean' };
const dateTime = { type: 'string', format: 'date-time' };
const nullable = (type: string, extra: Schema = {}): Schema => ({ type: [type, 'null'], ...extra });
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });

/** An object whose every property is always present, but for those named in `optional`. */
function object(properties: Record<string, Schema>, optional: readonly string[] = []): Schema {
  return { type: 'object', required: Object.keys(properties).filter((name) => !optional.includes(name)), properties };
}

/** `{current, high, max}` or `{current, max}`, as sharp reports its cache. */
const gauge = (keys: readonly string[]): Schema => object(Object.fromEntries(keys.map((key) => [key, number])));

const sweep = object({
  at: dateTime,
  duration_ms: number,
  jobs_pruned: integer,
  output_folders_removed: integer,
  temp_files_removed: integer,
  temp_bytes_removed: integer,
  removal_failures: integer,
  skipped: { ...boolean, description: 'Another instance sharing the store was sweeping: this one did nothing.' },
  wal_checkpoint: {
    oneOf: [{ type: 'null' }, object({ log_frames: integer, checkpointed_frames: integer, busy: boolean })],
    description: "SQLite's WAL checkpoint; null on PostgreSQL or when the sweep was skipped.",
  },
});

/** Which instance answered: its scheduler's owner id, `host:pid:token`. */
const instanceId = { ...string, description: 'The instance that answered (host:pid:token): with several instances on one queue, which one this is.' };

const memoryStats = object({
  alloc_mb: { ...number, description: 'V8 heap in use, MiB' },
  total_alloc_mb: { ...number, description: 'bytes allocated on the V8 heap since start, MiB (from GC statistics)' },
  sys_mb: { ...number, description: 'resident set size, MiB' },
  num_gc: { ...integer, description: 'garbage collections since start' },
  pending_images: { ...integer, description: 'images of queued or running jobs' },
  completed_images: { ...integer, description: 'images of retained succeeded jobs' },
  num_goroutines: { ...integer, description: 'active libuv handles and requests plus running attempts' },
  timestamp: dateTime,
});

export const componentSchemas: Record<string, Schema> = {
  Problem: object({
    type: string,
    title: string,
    status: integer,
    detail: string,
    code: { ...string, description: 'Stable machine code; the README lists them all.' },
    instance: { ...string, description: 'The path the problem was met on.' },
  }),
  JobOptions: z.toJSONSchema(jobOptionsSchema, { io: 'input', unrepresentable: 'any' }),
  Image: object({
    index: { ...integer, description: '0-based, in upload order' },
    originalName: nullable('string'),
    inputFormat: string,
    width: integer,
    height: integer,
    pages: integer,
    inputBytes: integer,
    status: { enum: shownImageStatuses, description: '`failed` or `cancelled`: its job ended without delivering it.' },
    outputFormat: nullable('string'),
    outputWidth: nullable('integer'),
    outputHeight: nullable('integer'),
    outputBytes: nullable('integer'),
    scaledToFit: { ...boolean, description: "The output was scaled down to fit the format's size limit." },
    location: nullable('string', { description: 'Download path (local store) or destination URL without its query.' }),
  }),
  Job: object(
    {
      id: integer,
      status: { enum: jobStatuses },
      attempts: integer,
      maxAttempts: integer,
      priority: integer,
      options: { type: 'object' },
      destination: { type: 'object', required: ['type'], description: 'URL query strings and header values are not shown.' },
      lastError: { oneOf: [{ type: 'null' }, object({ code: string, message: string })] },
      createdAt: dateTime,
      updatedAt: dateTime,
      startedAt: nullable('string', { format: 'date-time' }),
      finishedAt: nullable('string', { format: 'date-time' }),
      runAt: dateTime,
      images: { type: 'array', items: ref('Image'), description: 'In the answers about one job; not in lists.' },
    },
    ['images'],
  ),
  JobList: object({ jobs: { type: 'array', items: ref('Job') }, nextCursor: nullable('string') }),
  Health: object({ status: { const: 'ok' } }),
  Readiness: object({
    status: { enum: ['ready', 'not_ready'] },
    checks: object({ database: boolean, disk: boolean, accepting: boolean }),
  }),
  Stats: object({
    instanceId,
    generatedAt: dateTime,
    uptimeSeconds: integer,
    counts: { type: 'object', required: [...jobStatuses], properties: Object.fromEntries(jobStatuses.map((status) => [status, integer])) },
    queueDepth: integer,
    maxQueuedJobs: integer,
    recentJobs: { type: 'array', items: ref('Job') },
    lastSweep: {
      oneOf: [
        { type: 'null' },
        object({
          at: dateTime,
          durationMs: number,
          jobsPruned: integer,
          outputFoldersRemoved: integer,
          tempFilesRemoved: integer,
          tempBytesRemoved: integer,
          removalFailures: integer,
          skipped: boolean,
          walCheckpoint: { oneOf: [{ type: 'null' }, object({ busy: integer, log: integer, checkpointed: integer })] },
        }),
      ],
    },
    sweepCron: string,
  }),
  Samples: object({
    intervalMs: integer,
    capacity: integer,
    samples: {
      type: 'array',
      description: 'Oldest first.',
      items: object({
        at: { ...integer, description: 'epoch ms' },
        rssBytes: integer,
        heapUsedBytes: integer,
        heapTotalBytes: integer,
        externalBytes: integer,
        queued: integer,
        running: integer,
      }),
    },
  }),
  Sweep: sweep,
  MemoryStats: object({
    instance_id: instanceId,
    memory_stats: memoryStats,
    node: object({
      rss_bytes: integer,
      heap_total_bytes: integer,
      heap_used_bytes: integer,
      external_bytes: integer,
      array_buffers_bytes: integer,
      sharp: object({
        libvips_memory_mb: gauge(['current', 'high', 'max']),
        cache_files: gauge(['current', 'max']),
        cache_items: gauge(['current', 'max']),
        queued_tasks: integer,
        processing_tasks: integer,
        concurrency: integer,
      }),
      temp_files: object({ jobs: integer, files: integer, bytes: integer }),
      running_jobs: integer,
      event_loop_delay_ms: gauge(['mean', 'p50', 'p90', 'p99', 'max']),
      uptime_s: integer,
      last_sweep: { oneOf: [{ type: 'null' }, ref('Sweep')] },
    }),
  }),
  Cleanup: object({
    sweep: ref('Sweep'),
    sharp_cache: object({ items_released: integer, libvips_memory_mb_before: number, libvips_memory_mb_after: number }),
    memory_stats: memoryStats,
  }),
};
