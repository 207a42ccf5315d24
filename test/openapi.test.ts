import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../src/http/routes/openapi.js';
import { submitMultipart, submitRaw } from './support/http.js';
import { gradientJpeg } from './support/images.js';
import { serviceBackends } from './support/serviceBackends.js';
import { waitFor } from './support/wait.js';

// ajv-formats is CommonJS: its default export arrives as the module object under NodeNext's interop.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Operation = { operationId?: string; responses: Record<string, { $ref?: string; content?: Record<string, { schema?: object }>; headers?: object }> };
const document = openApiDocument() as unknown as {
  paths: Record<string, Record<string, Operation>>;
  components: { responses: Record<string, Operation['responses'][string]> };
};

const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const operations = Object.entries(document.paths).flatMap(([route, item]) =>
  Object.entries(item).filter(([method]) => methods.includes(method)).map(([method, operation]) => ({ route, method, operation })),
);

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(openApiDocument()) as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('names every operation once, and gives each its 405 with Allow', () => {
    const ids = operations.map(({ operation }) => operation.operationId);
    expect(ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(operations.length);
    for (const { operation } of operations) expect(operation.responses['405']).toEqual({ $ref: '#/components/responses/MethodNotAllowed' });
    expect(document.components.responses.MethodNotAllowed?.headers).toHaveProperty('Allow');
  });
});

/** A JSON Pointer token (RFC 6901). */
const token = (text: string): string => text.replaceAll('~', '~0').replaceAll('/', '~1');

/**
 * The documented response of an answer, with the JSON Pointer to it in the
 * document; undefined when the route, method or status is not documented.
 */
function documentedResponse(path: string, method: string, status: number) {
  const route = Object.keys(document.paths).find((template) => new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
  if (route === undefined) return undefined;
  const item = document.paths[route] ?? {};
  // A 405 is answered for a method the route lacks: any operation of the route documents it.
  const operationMethod = item[method] !== undefined ? method : status === 405 ? Object.keys(item)[0] : undefined;
  const response = operationMethod === undefined ? undefined : item[operationMethod]?.responses[String(status)];
  if (response === undefined) return undefined;
  if (response.$ref === undefined) return { route, response, pointer: `#/paths/${token(route)}/${operationMethod}/responses/${status}` };
  const name = response.$ref.split('/').pop() ?? '';
  const shared = document.components.responses[name];
  return shared === undefined ? undefined : { route, response: shared, pointer: `#/components/responses/${token(name)}` };
}

/** Whether `actual` (a Content-Type) is one of the media ranges the response documents. */
function mediaRangeOf(actual: string, ranges: readonly string[]): string | undefined {
  const type = actual.split(';')[0]?.trim() ?? '';
  return ranges.find((range) => range === type || (range.endsWith('/*') && type.startsWith(range.slice(0, -1))));
}

describe.each(serviceBackends)('the document against the service on $name', (backend) => {
  describe.skipIf(!backend.available)('', () => {
    describe('real answers of every route', () => {
      it('match their documented status, media type and schema', async () => {
        const s = await backend.start();
        const ajv = new Ajv2020({ strict: false, allErrors: true });
        addFormats(ajv);
        ajv.addSchema(openApiDocument(), 'openapi.json');
        const jpeg = await gradientJpeg(64, 48);
        const checked = new Set<string>();

        /** Sends one request and holds its answer to the document; returns the parsed JSON body, if any. */
        const check = async (method: string, path: string, init: RequestInit = {}): Promise<Record<string, unknown>> => {
          const response = await fetch(`${s.url}${path}`, { ...init, method: method.toUpperCase() });
          const where = `${method.toUpperCase()} ${path} → ${response.status}`;
          const documented = documentedResponse(path.split('?')[0] ?? path, method, response.status);
          expect(documented, `${where} is not documented`).toBeDefined();
          const content = documented?.response.content ?? {};
          const contentType = response.headers.get('content-type') ?? '';
          const range = mediaRangeOf(contentType, Object.keys(content));
          expect(range, `${where}: ${contentType} is not among ${Object.keys(content).join(', ')}`).toBeDefined();
          checked.add(`${method} ${documented?.route ?? path} ${response.status}`);
          if (!/json/.test(contentType)) {
            await response.arrayBuffer();
            return {};
          }
          const body = (await response.json()) as Record<string, unknown>;
          const validate = ajv.compile({ $ref: `openapi.json${documented?.pointer ?? ''}/content/${token(range ?? '')}/schema` });
          expect(validate(body), `${where}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`).toBe(true);
          return body;
        };

        const submitted = await submitRaw(s.url, jpeg, '?width=32');
        expect(submitted.status).toBe(202);
        await check('post', '/jobs', { body: jpeg, headers: { 'content-type': 'image/jpeg', 'idempotency-key': 'doc-check-1' } });
        await check('post', '/jobs', { body: jpeg, headers: { 'content-type': 'image/jpeg', 'idempotency-key': 'doc-check-1' } });
        await check('post', '/jobs?quality=500', { body: jpeg, headers: { 'content-type': 'image/jpeg' } });
        await check('post', '/jobs', { body: 'hello', headers: { 'content-type': 'text/plain' } });
        const multipart = await submitMultipart(s.url, [{ bytes: jpeg, name: 'a.jpg' }], { format: 'png' });
        expect(multipart.status).toBe(202);

        const id = String(submitted.body.id);
        await waitFor(async () => (await (await fetch(`${s.url}/jobs/${id}`)).json() as { status: string }).status === 'succeeded', 20_000, 50);
        await check('get', `/jobs/${id}`);
        await check('get', `/jobs/${id}/images/0`);
        await check('get', `/jobs/${id}/images/9`);
        await check('post', `/jobs/${id}/retry`);
        await check('post', `/jobs/${id}/cancel`);
        await check('get', '/jobs/999999');

        const delayed = async (): Promise<string> => String((await submitRaw(s.url, jpeg, '?delayMs=600000')).body.id);
        await check('post', `/jobs/${await delayed()}/cancel`);
        await check('get', `/jobs/${await delayed()}/images/0`);
        await check('post', `/jobs/${await delayed()}/retry`);

        const page = await check('get', '/jobs?status=succeeded&limit=1');
        await check('get', `/jobs?limit=1&cursor=${String(page.nextCursor)}`);
        await check('get', '/jobs?limit=0');
        await check('get', '/jobs?cursor=nope');

        for (const path of ['/health', '/ready', '/openapi.json', '/metrics', '/', '/stats', '/stats/samples', '/debug/memory-stats']) await check('get', path);
        await check('post', '/debug/memory/cleanup-images');
        // Now with a last sweep to show.
        await check('get', '/stats');
        await check('get', '/debug/memory-stats');
        await check('delete', `/jobs/${id}`);
        await check('put', '/health');

        // Every operation of the document was met at least once.
        const met = new Set([...checked].map((entry) => entry.split(' ').slice(0, 2).join(' ')));
        const unmet = operations.filter(({ route, method }) => !met.has(`${method} ${route}`)).map(({ route, method }) => `${method} ${route}`);
        expect(unmet).toEqual([]);
      });
    });
  });
});
