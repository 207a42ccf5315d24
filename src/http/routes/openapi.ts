import Router from '@koa/router';
import { jobStatuses } from '../../jobs/states.js';
import { fits, outputFormats } from '../../jobs/options.js';
import { MAX_WAIT_SECONDS } from '../prefer.js';
import { componentSchemas } from './openapiSchemas.js';

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
const unavailable = problem(
  'The disk is full (`disk_full`): nothing was stored or changed; or the PostgreSQL server cannot be reached (`database_unavailable`); see Retry-After.',
);

const debugForbidden = problem('Not a loopback client (`debug_loopback_only`).');

/** What a route answers for a method it does not have; OpenAPI has no place for it but each operation. */
const methodNotAllowed = {
  description: 'The route exists, not with this method (`method_not_allowed`).',
  headers: { Allow: { description: 'The methods the route has', schema: { type: 'string' } } },
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
};

type Operation = { operationId: string; responses: Record<string, unknown> } & Record<string, unknown>;
type Paths = Record<string, Record<string, Operation>>;

/** Every operation also answers 405 for the methods its route lacks. */
function withMethodNotAllowed(paths: Paths): Paths {
  return Object.fromEntries(
    Object.entries(paths).map(([route, operations]) => [
      route,
      Object.fromEntries(
        Object.entries(operations).map(([method, operation]) => [
          method,
          { ...operation, responses: { ...operation.responses, '405': { $ref: '#/components/responses/MethodNotAllowed' } } },
        ]),
      ),
    ]),
  );
}

/** The raw body's query parameters, with the ranges of the schema that validates them. */
function queryOptions() {
  const { properties } = componentSchemas.JobOptions as { properties: Record<string, Record<string, unknown>> };
  const scalar = ({ default: _default, ...schema }: Record<string, unknown> = {}) => schema;
  return [
    { name: 'format', in: 'query', schema: { enum: outputFormats } },
    { name: 'quality', in: 'query', schema: scalar(properties.quality) },
    { name: 'width', in: 'query', schema: scalar(properties.width) },
    { name: 'height', in: 'query', schema: scalar(properties.height) },
    { name: 'fit', in: 'query', schema: { enum: fits } },
    { name: 'maxAttempts', in: 'query', schema: scalar(properties.maxAttempts) },
    { name: 'priority', in: 'query', schema: scalar(properties.priority) },
    { name: 'delayMs', in: 'query', schema: scalar(properties.delayMs) },
  ];
}

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
    servers: [{ url: '/', description: 'This service, wherever it listens (HOST, PORT)' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Required on every route but /health when API_TOKEN is set.' } },
      schemas: componentSchemas,
      responses: { MethodNotAllowed: methodNotAllowed },
    },
    security: [{}, { bearer: [] }],
    paths: withMethodNotAllowed({
      '/jobs': {
        post: {
          operationId: 'submitJob',
          summary: 'Submit a job',
          description:
            'Multipart (`images` files, optional `options` JSON field) or one raw image (`image/*` or `application/octet-stream`, options in the query string; `destination` as JSON). The 202 comes only after the files and the job row are durable.',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              schema: { type: 'string', pattern: '^[!-~]{1,200}$' },
              description: 'A repeated key returns the first job (200).',
            },
            ...queryOptions(),
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
            '503': problem('Queue full (`queue_full`), disk low (`disk_low`: free space less what uploads in progress reserve is below MIN_FREE_DISK_BYTES), disk full (`disk_full`) or shutting down, nothing was stored; or the PostgreSQL server cannot be reached (`database_unavailable`: repeat with the same Idempotency-Key); see Retry-After.'),
          },
        },
        get: {
          operationId: 'listJobs',
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
          operationId: 'getJob',
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
          operationId: 'cancelJob',
          summary: 'Cancel a queued or running job',
          description: 'A running attempt is aborted; the job\'s temp files are deleted.',
          parameters: [jobId],
          responses: { '200': json('Cancelled', 'Job'), '401': unauthorized, '404': notFound, '409': problem('Already ended (`job_ended`).'), '503': unavailable },
        },
      },
      '/jobs/{id}/retry': {
        post: {
          operationId: 'retryJob',
          summary: 'Run a queued job now',
          description: 'A job waiting for its retry backoff runs at once. Ended jobs cannot be retried: their inputs were released.',
          parameters: [jobId],
          responses: {
            '200': json('Due now', 'Job'),
            '401': unauthorized,
            '404': notFound,
            '409': problem('`input_released` (failed or cancelled), `job_succeeded` or `job_running`.'),
            '503': unavailable,
          },
        },
      },
      '/jobs/{id}/images/{index}': {
        get: {
          operationId: 'downloadImage',
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
      '/health': { get: { operationId: 'getHealth', summary: 'Liveness', security: [], responses: { '200': json('The process is up', 'Health') } } },
      '/ready': {
        get: {
          operationId: 'getReadiness',
          summary: 'Readiness: database reachable, disk above MIN_FREE_DISK_BYTES, not shutting down',
          responses: { '200': json('Ready', 'Readiness'), '401': unauthorized, '503': json('Not ready; `checks` says why', 'Readiness') },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'getOpenApi',
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object', required: ['openapi', 'paths'] } } } }, '401': unauthorized },
        },
      },
      '/metrics': {
        get: {
          operationId: 'getMetrics',
          summary: 'Prometheus metrics',
          responses: { '200': { description: 'The Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, '401': unauthorized },
        },
      },
      '/': {
        get: {
          operationId: 'getDashboard',
          summary: 'The dashboard page: counts, recent jobs, memory and queue depth over the last hour',
          responses: { '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } }, '401': unauthorized },
        },
      },
      '/stats': {
        get: {
          operationId: 'getStats',
          summary: 'What the dashboard shows: counts by status, queue depth, recent jobs, the last sweep',
          responses: { '200': json('The figures', 'Stats'), '401': unauthorized },
        },
      },
      '/stats/samples': {
        get: {
          operationId: 'getStatsSamples',
          summary: 'The memory and queue-depth samples of the last hour (a fixed-size ring)',
          responses: { '200': json('The samples', 'Samples'), '401': unauthorized },
        },
      },
      '/debug/memory-stats': {
        get: {
          operationId: 'getMemoryStats',
          summary: 'Memory figures under the original service\'s field names, beside Node\'s own',
          description: 'Loopback clients only, unless API_TOKEN is set and given.',
          responses: { '200': json('The figures', 'MemoryStats'), '401': unauthorized, '403': debugForbidden },
        },
      },
      '/debug/memory/cleanup-images': {
        post: {
          operationId: 'runCleanup',
          summary: 'Run the sweeper now and release sharp\'s cache; answers what was removed',
          description: 'Loopback clients only, unless API_TOKEN is set and given.',
          responses: { '200': json('What the sweep and the cache release did', 'Cleanup'), '401': unauthorized, '403': debugForbidden },
        },
      },
    }),
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
