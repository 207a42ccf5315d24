import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startService } from './support/service.js';

/** A debug-level logger whose lines are kept, parsed, in `lines`. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const requestLine = (path: string) => lines.find((line) => line.msg === 'request' && line.path === path);
  return { log, requestLine };
}

const DEBUG = 20;
const INFO = 30;

describe('request log lines', () => {
  it('put the polled routes at debug and the others at info', async () => {
    const { log, requestLine } = capturingLogger();
    const s = await startService({}, log);
    for (const path of ['/health', '/ready', '/metrics', '/stats', '/stats/samples', '/jobs', '/openapi.json']) {
      expect((await fetch(`${s.url}${path}`)).status).toBe(200);
    }
    for (const path of ['/health', '/ready', '/metrics', '/stats', '/stats/samples']) expect(requestLine(path)).toMatchObject({ level: DEBUG, status: 200 });
    for (const path of ['/jobs', '/openapi.json']) expect(requestLine(path)).toMatchObject({ level: INFO, status: 200 });
    expect(requestLine('/jobs')).not.toHaveProperty('code');
  });

  it('carry the code of an error answer', async () => {
    const { log, requestLine } = capturingLogger();
    const s = await startService({ API_TOKEN: 'a-token-long-enough' }, log);
    await fetch(`${s.url}/jobs/12`, { headers: { authorization: 'Bearer a-token-long-enough' } });
    await fetch(`${s.url}/jobs/12/cancel`, { method: 'DELETE', headers: { authorization: 'Bearer a-token-long-enough' } });
    await fetch(`${s.url}/metrics`);
    expect(requestLine('/jobs/12')).toMatchObject({ level: INFO, status: 404, code: 'job_not_found' });
    expect(requestLine('/jobs/12/cancel')).toMatchObject({ level: INFO, status: 405, code: 'method_not_allowed' });
    // An error on a polled route is worth seeing at info: a scraper without the token.
    expect(requestLine('/metrics')).toMatchObject({ level: INFO, status: 401, code: 'unauthorized' });
  });
});
