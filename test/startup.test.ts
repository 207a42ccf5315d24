import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUpServiceProcesses, newDataDir, readDatabase, startServiceProcess } from './support/childService.js';
import { waitFor } from './support/wait.js';

afterEach(cleanUpServiceProcesses);

const root = path.resolve(import.meta.dirname, '..');

/** Runs the service the way `npm start` does and collects how it ends. */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['scripts/start.sh'], { cwd: root, env: { PATH: process.env.PATH ?? '', DATA_DIR: newDataDir(), PORT: '0', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('starting the service', () => {
  it.each([
    [{ PORT: 'eighty' }, 'image-jobs: PORT="eighty" is invalid: expected an integer from 0 to 65535'],
    [{ MAX_CONCURRENT_JOBS: '-1' }, 'image-jobs: MAX_CONCURRENT_JOBS="-1" is invalid: expected an integer from 1 to 1000'],
    [{ SQLITE_SYNCHRONOUS: 'off' }, 'image-jobs: SQLITE_SYNCHRONOUS="off" is invalid: expected one of FULL, NORMAL'],
  ])('refuses a bad value with one line naming the variable, the value and what is allowed: %o', async (env, line) => {
    const { code, stdout, stderr } = await runToExit(env);
    expect(code).toBe(1);
    expect(stderr).toBe(`${line}\n`);
    expect(stdout).toBe('');
  });

  it('refuses a variable set to nothing instead of taking its default', async () => {
    const { code, stderr } = await runToExit({ PORT: '' });
    expect(stderr).toBe('image-jobs: PORT="" is invalid: expected a value (unset PORT for its default)\n');
    expect(code).toBe(1);
  });

  it('reads settings from ENV_FILE', async () => {
    const envFile = path.join(newDataDir(), 'settings.env');
    fs.writeFileSync(envFile, 'SQLITE_SYNCHRONOUS=off\n');
    const { code, stderr } = await runToExit({ ENV_FILE: envFile });
    expect(stderr).toBe('image-jobs: SQLITE_SYNCHRONOUS="off" is invalid: expected one of FULL, NORMAL\n');
    expect(code).toBe(1);
  });

  it('warns at start, in one line naming both, of a variable one edit away from a setting', async () => {
    const service = await startServiceProcess(newDataDir(), { MAX_CONCURERNT_JOBS: '3' });
    const warning = service.logTail().split('\n').find((line) => line.includes('MAX_CONCURERNT_JOBS'));
    expect(JSON.parse(warning ?? '{}')).toMatchObject({
      level: 40,
      variable: 'MAX_CONCURERNT_JOBS',
      meant: 'MAX_CONCURRENT_JOBS',
      msg: 'MAX_CONCURERNT_JOBS is not a setting: did you mean MAX_CONCURRENT_JOBS? It is ignored',
    });
  });

  it.each([
    ['/proc/nope', "ENOENT: no such file or directory, mkdir '/proc/nope'"],
    ['/proc/self/nope/deeper', "ENOENT: no such file or directory, mkdir '/proc/self/nope'"],
  ])('refuses a DATA_DIR that cannot be created at once, in one line naming it and the cause: %s', async (dataDir, cause) => {
    const started = Date.now();
    const { code, stderr } = await runToExit({ DATA_DIR: dataDir });
    expect(stderr).toBe(`image-jobs: DATA_DIR="${dataDir}" cannot be used: ${cause}\n`);
    expect(code).toBe(1);
    // The kill timer of runToExit is 15 s: this one did not spin until it.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('refuses a DATA_DIR that is a file', async () => {
    const file = path.join(newDataDir(), 'a-file');
    fs.writeFileSync(file, '');
    const { code, stderr } = await runToExit({ DATA_DIR: file });
    expect(stderr).toBe(`image-jobs: DATA_DIR="${file}" cannot be used: EEXIST: file already exists, mkdir '${file}'\n`);
    expect(code).toBe(1);
  });

  it('refuses a port in use in one line naming PORT', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    try {
      const { code, stderr } = await runToExit({ HOST: '127.0.0.1', PORT: String(port) });
      expect(stderr).toBe(`image-jobs: PORT="${port}" cannot be used: listen EADDRINUSE: address already in use 127.0.0.1:${port}\n`);
      expect(code).toBe(1);
    } finally {
      holder.close();
    }
  });

  it('refuses a HOST that does not resolve in one line naming HOST', async () => {
    // .invalid never resolves (RFC 2606); without a resolver the cause is EAI_AGAIN rather than ENOTFOUND.
    const { code, stderr } = await runToExit({ HOST: 'nohost.invalid' });
    expect(stderr).toMatch(/^image-jobs: HOST="nohost\.invalid" cannot be used: getaddrinfo (ENOTFOUND|EAI_AGAIN) nohost\.invalid\n$/);
    expect(code).toBe(1);
  });

  it('refuses a HOST that is not an address of this machine in one line naming HOST', async () => {
    const { code, stderr } = await runToExit({ HOST: '192.0.2.1' });
    expect(stderr).toBe('image-jobs: HOST="192.0.2.1" cannot be used: listen EADDRNOTAVAIL: address not available 192.0.2.1\n');
    expect(code).toBe(1);
  });
});

/** Submits a job whose conversion keeps libvips busy for seconds and cannot be interrupted (AVIF encoding), and waits until it runs. */
async function submitSlowJob(url: string): Promise<number> {
  const image = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#777', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
    .jpeg()
    .toBuffer();
  const submitted = await fetch(`${url}/jobs?format=avif`, { method: 'POST', body: image, headers: { 'content-type': 'image/jpeg' } });
  expect(submitted.status).toBe(202);
  const { id } = (await submitted.json()) as { id: number };
  await waitFor(async () => ((await (await fetch(`${url}/jobs/${id}`)).json()) as { status: string }).status === 'running');
  return id;
}

describe('stopping the service', () => {
  it('ends soon after the grace period even while libvips cannot be interrupted, the attempt put back uncounted', async () => {
    const dataDir = newDataDir();
    const service = await startServiceProcess(dataDir, { SHUTDOWN_GRACE_MS: '500' });
    const id = await submitSlowJob(service.url);
    const started = Date.now();
    const status = await service.kill('SIGTERM');
    // Grace (0.5 s) plus the libvips drain (5 s), with room for a loaded machine.
    expect(Date.now() - started).toBeLessThan(9_000);
    expect(status.signal).toBe('SIGKILL');
    const job = readDatabase(dataDir, (db) => db.prepare('SELECT status, attempts FROM jobs WHERE id = ?').get(id));
    expect(job).toEqual({ status: 'queued', attempts: 0 });
    const events = readDatabase(dataDir, (db) => db.prepare('SELECT kind FROM job_events WHERE job_id = ? ORDER BY id').all(id));
    expect(events).toEqual([{ kind: 'started' }, { kind: 'returned' }]);
    // Its last words reached stdout before the SIGKILL: no mistaking it for an OOM kill.
    await waitFor(() => service.logTail().includes('"msg":"a conversion is still running in libvips after the grace period: exiting now"'), 2_000);
  });

  it('exits at once on a second signal, leaving the running job for the next start', async () => {
    const dataDir = newDataDir();
    const env = { SHUTDOWN_GRACE_MS: '60000', MAX_ATTEMPTS: '5' };
    const service = await startServiceProcess(dataDir, env);
    const id = await submitSlowJob(service.url);

    const started = Date.now();
    void service.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const status = await service.kill('SIGINT');
    expect(status.signal).toBe('SIGKILL'); // it ends itself without waiting for libvips
    expect(Date.now() - started).toBeLessThan(10_000); // far inside the 60 s grace period
    await waitFor(() => service.logTail().includes('"signal":"SIGINT","msg":"second signal: exiting now"'), 2_000);
    expect(readDatabase(dataDir, (db) => db.prepare('SELECT status FROM jobs WHERE id = ?').get(id))).toEqual({ status: 'running' });

    const again = await startServiceProcess(dataDir, env);
    await waitFor(async () => {
      const job = (await (await fetch(`${again.url}/jobs/${id}`)).json()) as { status: string; attempts: number };
      return job.status === 'running' && job.attempts === 2;
    }, 20_000);
  });
});
