import Router from '@koa/router';
import { z } from 'zod';
import { jobStatuses } from '../../db/states.js';
import { jobOptionsSchema } from '../../jobs/options.js';
import { MAX_WAIT_SECONDS } from '../prefer.js';

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const json = (description: string, ref: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } },
});

const jobId = { name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } };
const unauthorized = problem('API_TOKEN is set and the bearer token is missing or wrong (`unauthorized`).');
const notFound = problem('No such job (`job_not_found`).');
const diskFull = problem('The disk is full (`disk_full`): nothing was stored or changed; see Retry-After.');

const nullable = (type: string, extra: Record<string, unknown> = {}) => ({ type: [type, 'null'], ...extra });

/** The OpenAPI 3.1 description of every route. Options are described from the same schema that validates them. */
export function openApiDocument() {
  return {
    openapi: '3.1.0',
    info: {
      title: 'image-jobs',
      version: '0.1.0',
      description:
        'A durable image job service: upload images, get them converted (WebP quality 80 by default) and delivered. Errors are RFC 9457 problem documents with a stable `code`.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Required on every route but /health when API_TOKEN is set.' } },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'detail', 'code'],
          properties: {
            type: { type: 'string' },
            title: { type: 'string' },
            status: { type: 'integer' },
            detail: { type: 'string' },
            code: { type: 'string', description: 'Stable machine code, e.g. `invalid_options`, `queue_full`, `image_too_large`.' },
            instance: { type: 'string' },
          },
        },
        JobOptions: z.toJSONSchema(jobOptionsSchema, { io: 'input', unrepresentable: 'any' }),
        Image: {
          type: 'object',
          properties: {
            index: { type: 'integer', description: '0-based, in upload order' },
            originalName: nullable('string'),
            inputFormat: { type: 'string' },
            width: { type: 'integer' },
            height: { type: 'integer' },
            pages: { type: 'integer' },
            inputBytes: { type: 'integer' },
            status: { enum: ['pending', 'delivered', 'failed', 'cancelled'], description: '`failed` or `cancelled`: its job ended without delivering it.' },
            outputFormat: nullable('string'),
            outputWidth: nullable('integer'),
            outputHeight: nullable('integer'),
            outputBytes: nullable('integer'),
            scaledToFit: { type: 'boolean', description: 'The output was scaled down to fit the format\'s size limit.' },
            location: nullable('string', { description: 'Download path (local store) or destination URL without its query.' }),
          },
        },
        Job: {
          type: 'object',
          properties: {
            id: { type: 'integer' },
            status: { enum: jobStatuses },
            attempts: { type: 'integer' },
            maxAttempts: { type: 'integer' },
            priority: { type: 'integer' },
            options: { type: 'object' },
            destination: { type: 'object', description: 'URL query strings and header values are not shown.' },
            lastError: { type: ['object', 'null'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
            createdAt: { type: 'string', format: 'date-time' },
            updatedAt: { type: 'string', format: 'date-time' },
            startedAt: nullable('string', { format: 'date-time' }),
            finishedAt: nullable('string', { format: 'date-time' }),
            runAt: { type: 'string', format: 'date-time' },
            images: { type: 'array', items: { $ref: '#/components/schemas/Image' } },
          },
        },
        JobList: {
          type: 'object',
          properties: {
            jobs: { type: 'array', items: { $ref: '#/components/schemas/Job' } },
            nextCursor: nullable('string'),
          },
        },
      },
    },
    security: [{}, { bearer: [] }],
    paths: {
      '/jobs': {
        post: {
          summary: 'Submit a job',
          description:
            'Multipart (`images` files, optional `options` JSON field) or one raw image (`image/*` or `application/octet-stream`, options in the query string; `destination` as JSON). The 202 comes only after the files and the job row are durable.',
          parameters: [
            { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 200 }, description: 'A repeated key returns the first job (200).' },
            { name: 'quality', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } },
            { name: 'format', in: 'query', schema: { enum: ['webp', 'avif', 'jpeg', 'png'] } },
            { name: 'width', in: 'query', schema: { type: 'integer' } },
            { name: 'height', in: 'query', schema: { type: 'integer' } },
            { name: 'fit', in: 'query', schema: { enum: ['cover', 'contain', 'fill', 'inside', 'outside'] } },
            { name: 'maxAttempts', in: 'query', schema: { type: 'integer' } },
            { name: 'priority', in: 'query', schema: { type: 'integer' } },
            { name: 'delayMs', in: 'query', schema: { type: 'integer' } },
            { name: 'destination', in: 'query', schema: { type: 'string' }, description: 'JSON, e.g. {"type":"http","url":"https://…"}' },
          ],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  properties: {
                    images: { type: 'array', items: { type: 'string', contentMediaType: 'application/octet-stream' } },
                    options: { $ref: '#/components/schemas/JobOptions' },
                  },
                  required: ['images'],
                },
                encoding: { options: { contentType: 'application/json' } },
              },
              'image/*': { schema: { type: 'string', contentMediaType: 'image/*' } },
              'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } },
            },
          },
          responses: {
            '202': { ...json('Accepted and durable', 'Job'), headers: { Location: { schema: { type: 'string' } } } },
            '200': json('An earlier job with the same Idempotency-Key', 'Job'),
            '400': problem('Malformed request or options (`invalid_options`, `malformed_multipart`, `invalid_destination`, `no_images`, `empty_body`, …).'),
            '401': unauthorized,
            '413': problem('An image over MAX_UPLOAD_BYTES (`image_too_large_bytes`) or too many images (`too_many_images`).'),
            '415': problem('Not an image, or a format not accepted (`unsupported_media_type`).'),
            '422': problem('Image refused from its header: over MAX_INPUT_PIXELS (`image_too_large`) or unreadable (`image_corrupt`).'),
            '503': problem('Queue full (`queue_full`), disk low (`disk_low`: free space less what uploads in progress reserve is below MIN_FREE_DISK_BYTES), disk full (`disk_full`) or shutting down; nothing was stored; see Retry-After.'),
          },
        },
        get: {
          summary: 'List jobs, newest first',
          parameters: [
            { name: 'status', in: 'query', schema: { enum: jobStatuses } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
            { name: 'cursor', in: 'query', schema: { type: 'string' }, description: '`nextCursor` of the previous page' },
          ],
          responses: { '200': json('A page of jobs', 'JobList'), '400': problem('Bad query (`invalid_query`, `invalid_cursor`).'), '401': unauthorized },
        },
      },
      '/jobs/{id}': {
        get: {
          summary: 'A job with its images',
          description: `With \`Prefer: wait=N\` (RFC 7240) the answer waits until the job has ended, for at most N seconds (up to ${MAX_WAIT_SECONDS}), and shows the job as it is then: a client learns of the end without polling.`,
          parameters: [
            jobId,
            { name: 'Prefer', in: 'header', required: false, schema: { type: 'string', examples: ['wait=30'] }, description: 'wait=N: hold the answer until the job ends or N seconds pass.' },
          ],
          responses: {
            '200': { ...json('The job', 'Job'), headers: { 'Preference-Applied': { description: 'wait=N when the wait was honoured (N as cut to the limit)', schema: { type: 'string' } } } },
            '401': unauthorized,
            '404': notFound,
          },
        },
      },
      '/jobs/{id}/cancel': {
        post: {
          summary: 'Cancel a queued or running job',
          description: 'A running attempt is aborted; the job\'s temp files are deleted.',
          parameters: [jobId],
          responses: { '200': json('Cancelled', 'Job'), '401': unauthorized, '404': notFound, '409': problem('Already ended (`job_ended`).'), '503': diskFull },
        },
      },
      '/jobs/{id}/retry': {
        post: {
          summary: 'Run a queued job now',
          description: 'A job waiting for its retry backoff runs at once. Ended jobs cannot be retried: their inputs were released.',
          parameters: [jobId],
          responses: {
            '200': json('Due now', 'Job'),
            '401': unauthorized,
            '404': notFound,
            '409': problem('`input_released` (failed or cancelled), `job_succeeded` or `job_running`.'),
            '503': diskFull,
          },
        },
      },
      '/jobs/{id}/images/{index}': {
        get: {
          summary: 'Download a result from the local output store',
          parameters: [jobId, { name: 'index', in: 'path', required: true, schema: { type: 'integer', minimum: 0 } }],
          responses: {
            '200': { description: 'The converted image', content: { 'image/*': { schema: { type: 'string', contentMediaType: 'image/*' } } } },
            '401': unauthorized,
            '404': problem('No such job or image, or the result was pruned (`result_gone`).'),
            '409': problem('Not delivered yet (`image_not_ready`), never to be: its job failed or was cancelled (`image_not_delivered`), or delivered to HTTP (`not_in_local_store`).'),
          },
        },
      },
      '/health': { get: { summary: 'Liveness', security: [], responses: { '200': { description: 'The process is up' } } } },
      '/ready': {
        get: {
          summary: 'Readiness: database reachable, disk above MIN_FREE_DISK_BYTES, not shutting down',
          responses: { '200': { description: 'Ready' }, '401': unauthorized, '503': { description: 'Not ready; `checks` says why' } },
        },
      },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' }, '401': unauthorized } } },
      '/metrics': {
        get: { summary: 'Prometheus metrics (text format)', responses: { '200': { description: 'text/plain; version=0.0.4' }, '401': unauthorized } },
      },
      '/': { get: { summary: 'The dashboard page: counts, recent jobs, memory and queue depth over the last hour', responses: { '200': { description: 'text/html' }, '401': unauthorized } } },
      '/stats': { get: { summary: 'What the dashboard shows: counts by status, queue depth, recent jobs, the last sweep', responses: { '200': { description: 'JSON' }, '401': unauthorized } } },
      '/stats/samples': {
        get: { summary: 'The memory and queue-depth samples of the last hour (a fixed-size ring)', responses: { '200': { description: 'JSON' }, '401': unauthorized } },
      },
      '/debug/memory-stats': {
        get: {
          summary: 'Memory figures under the original service\'s field names, beside Node\'s own',
          description: 'Loopback clients only, unless API_TOKEN is set and given.',
          responses: { '200': { description: 'JSON: {memory_stats: {...}, node: {...}}' }, '401': unauthorized, '403': problem('Not a loopback client (`debug_loopback_only`).') },
        },
      },
      '/debug/memory/cleanup-images': {
        post: {
          summary: 'Run the sweeper now and release sharp\'s cache; answers what was removed',
          description: 'Loopback clients only, unless API_TOKEN is set and given.',
          responses: { '200': { description: 'JSON' }, '401': unauthorized, '403': problem('Not a loopback client (`debug_loopback_only`).') },
        },
      },
    } as Record<string, unknown>,
  };
}

export function openApiRoutes(): Router {
  const router = new Router();
  const document = openApiDocument();
  router.get('/openapi.json', (ctx) => {
    ctx.body = document;
  });
  return router;
}
