import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { problemMiddleware } from '../src/http/problem.js';
import { confirmDurable, DiskFullError } from '../src/storage/diskFull.js';
import { call, expectProblem } from './support/http.js';

const enospc = (): DiskFullError => new DiskFullError(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));

/** A real server whose one route fails the way `fail` does, answered by the service's error renderer. */
async function failingServer(fail: () => Promise<void>): Promise<string> {
  const app = new Koa();
  app.silent = true;
  app.use(problemMiddleware(pino({ level: 'silent' }), () => undefined));
  app.use(async () => fail());
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('a full disk, as the API answers it', () => {
  it('says nothing was stored when the write itself found no room', async () => {
    const answer = await call(await failingServer(() => Promise.reject(enospc())));
    expectProblem(answer, 503, 'disk_full');
    expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(String(answer.body.detail)).toContain('nothing was stored');
  });

  it('says what stands when the write committed and only its fsync found no room, with its Location', async () => {
    const url = await failingServer(() => confirmDurable(Promise.reject(enospc()), 'Job 7 was stored', 7));
    const answer = await call(url);
    expectProblem(answer, 503, 'disk_full');
    expect(answer.headers.get('location')).toBe('/jobs/7');
    expect(String(answer.body.detail)).toMatch(/^Job 7 was stored, but the disk is full/);
    expect(String(answer.body.detail)).not.toContain('nothing was stored');
  });

  it('leaves any other failure of the fsync as it is', async () => {
    const eio = Object.assign(new Error('i/o error'), { code: 'EIO' });
    await expect(confirmDurable(Promise.reject(eio), 'Job 7 was stored')).rejects.toBe(eio);
  });
});
