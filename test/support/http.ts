import { expect } from 'vitest';
import { waitFor } from './wait.js';

/** An HTTP answer with its body parsed as JSON (or `{ text }` when it is not JSON). */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

export async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, headers: response.headers, body };
}

/** `POST /jobs` with one image as the raw body. */
export function submitRaw(baseUrl: string, bytes: Buffer, query = '', contentType = 'image/jpeg'): Promise<Answer> {
  return call(`${baseUrl}/jobs${query}`, { method: 'POST', body: bytes, headers: { 'content-type': contentType } });
}

/** `POST /jobs` as multipart/form-data: files in `images`, and `options` as JSON when given. */
export function submitMultipart(baseUrl: string, files: readonly { bytes: Buffer; name: string }[], options?: unknown): Promise<Answer> {
  const form = new FormData();
  for (const file of files) form.append('images', new Blob([file.bytes]), file.name);
  if (options !== undefined) form.append('options', JSON.stringify(options));
  return call(`${baseUrl}/jobs`, { method: 'POST', body: form });
}

/** An RFC 9457 problem with this status (and code, when given). */
export function expectProblem(answer: Answer, status: number, code?: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String), type: expect.any(String), code: code ?? expect.any(String) });
}

const terminal = ['succeeded', 'failed', 'cancelled'];

/** Polls `GET /jobs/{id}` until the job has ended, and returns it. */
export function jobEnded(baseUrl: string, id: unknown, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  return waitFor(async () => {
    const answer = await call(`${baseUrl}/jobs/${String(id)}`);
    return terminal.includes(String(answer.body.status)) ? answer.body : null;
  }, timeoutMs, 50);
}
