/**
 * Several instances on one queue, proven on the real thing: three service
 * processes started as `npm start` starts them, with the same DATABASE_URL (a
 * fresh PostgreSQL database of the test's own) and the same DATA_DIR. What
 * each attempt did is read from the shared database's `job_events`, whose
 * `lease_owner` names the instance that made the attempt.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { cleanUpServiceProcesses, newDataDir, startServiceProcess, tempFiles, type ServiceProcess } from './support/childService.js';
import { call, jobEnded, submitRaw } from './support/http.js';
import { gradientJpeg } from './support/images.js';
import { withoutInstance } from './support/metrics.js';
import { postgresAvailable, testPostgres } from './support/postgres.js';
import { waitFor } from './support/wait.js';

afterEach(cleanUpServiceProcesses);

const onPostgres = await postgresAvailable();

interface Instance extends ServiceProcess {
  /** Its lease owner id, as its attempts' events record it. */
  readonly id: string;
}

interface EventRow {
  readonly job_id: number;
  readonly attempt: number;
  readonly kind: string;
  readonly lease_owner: string | null;
  readonly at: number;
}

interface JobRow {
  readonly id: number;
  readonly status: string;
  readonly attempts: number;
  readonly lease_owner: string | null;
}

interface Cluster {
  readonly instances: readonly Instance[];
  readonly dataDir: string;
  jobs(): Promise<JobRow[]>;
  /** When the lease of each job running under `owner` expires (epoch ms). */
  leasesOf(owner: string): Promise<Map<number, number>>;
  /** Each job's events, oldest first. */
  events(): Promise<Map<number, EventRow[]>>;
  /** Waits until every job in the database has ended, and returns them. */
  allEnded(timeoutMs?: number): Promise<JobRow[]>;
}

/** Three instances on one fresh database and one DATA_DIR, started at once (their migrations race). */
async function startCluster(env: Record<string, string> = {}): Promise<Cluster> {
  const url = await testPostgres();
  const dataDir = newDataDir();
  const settings = { DATABASE_URL: url, UPLOAD_ALLOWED_HOSTS: '127.0.0.1', MAX_COMPLETED_JOBS: '10000', ...env };
  const processes = await Promise.all([0, 1, 2].map(() => startServiceProcess(dataDir, settings)));
  const instances = await Promise.all(processes.map(async (service) => {
    const { body } = await call(`${service.url}/debug/memory-stats`);
    return Object.assign(service, { id: String(body.instance_id) });
  }));
  expect(new Set(instances.map((instance) => instance.id)).size).toBe(3);

  const db = new pg.Pool({ connectionString: url, max: 2 });
  // The database is dropped (its connections cut) when the test finishes.
  db.on('error', () => undefined);
  onTestFinished(() => db.end());
  const jobs = async (): Promise<JobRow[]> =>
    (await db.query<JobRow>(`SELECT id::int AS id, status, attempts, lease_owner FROM jobs ORDER BY id`)).rows;
  return {
    instances,
    dataDir,
    jobs,
    async leasesOf(owner) {
      const { rows } = await db.query<{ id: number; expires: number }>(
        `SELECT id::int AS id, lease_expires_at::float8 AS expires FROM jobs WHERE status = 'running' AND lease_owner = $1`, [owner],
      );
      return new Map(rows.map((row) => [row.id, row.expires]));
    },
    async events() {
      const { rows } = await db.query<EventRow>(`SELECT job_id::int AS job_id, attempt, kind, lease_owner, at::float8 AS at FROM job_events ORDER BY id`);
      const byJob = new Map<number, EventRow[]>();
      for (const row of rows) byJob.set(row.job_id, [...(byJob.get(row.job_id) ?? []), row]);
      return byJob;
    },
    allEnded(timeoutMs = 60_000) {
      return waitFor(async () => {
        const rows = await jobs();
        return rows.every((row) => ['succeeded', 'failed', 'cancelled'].includes(row.status)) ? rows : null;
      }, timeoutMs, 50);
    },
  };
}

/** An event as a test states it: its kind, its attempt and which instance it names. */
const step = (event: EventRow, instances: readonly Instance[]): string =>
  `${event.kind}#${event.attempt}@${instances.findIndex((instance) => instance.id === event.lease_owner)}`;

interface HoldingTarget {
  /** The URL template of a job's upload here. */
  readonly url: string;
  /** Paths of the uploads received whole so far, in order. */
  readonly received: string[];
  /** Paths of the uploads whose connection closed while their answer was held. */
  readonly cut: string[];
  /** Uploads received whose answer is held now. */
  held(): number;
  /** Answers the held uploads of `path` 200. */
  answer(path: string): void;
  /** Answers every held upload 200, and every later one at once. */
  openUp(): void;
}

/**
 * An HTTP destination on 127.0.0.1 that reads each upload whole, then holds
 * its answer until the test lets it go: an attempt delivering there stays
 * running, converted and mid-delivery, for as long as the test needs.
 */
async function holdingTarget(): Promise<HoldingTarget> {
  const received: string[] = [];
  const cut: string[] = [];
  const held = new Map<http.ServerResponse, string>();
  let open = false;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const where = req.url ?? '';
      received.push(where);
      if (open) {
        res.end();
        return;
      }
      held.set(res, where);
      res.on('close', () => {
        if (held.delete(res)) cut.push(where);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const answer = (only: string | null): void => {
    for (const [res, where] of [...held]) {
      if (only !== null && where !== only) continue;
      held.delete(res);
      res.end();
    }
  };
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/results/{jobId}.webp`,
    received,
    cut,
    held: () => held.size,
    answer: (where) => answer(where),
    openUp() {
      open = true;
      answer(null);
    },
  };
}

const uploadPath = (jobId: number): string => `/results/${jobId}.webp`;

/** Submits one image to `instance`; its result goes to `target` when given, else to the shared output folder. */
async function submit(instance: Instance, image: Buffer, target?: HoldingTarget): Promise<number> {
  const query = target === undefined ? '' : `?destination=${encodeURIComponent(JSON.stringify({ type: 'http', url: target.url }))}`;
  const answer = await submitRaw(instance.url, image, query);
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  return Number(answer.body.id);
}

/** A sample of an instance's /metrics, 0 when absent. */
async function sample(instance: Instance, series: string): Promise<number> {
  const text = withoutInstance(await (await fetch(`${instance.url}/metrics`)).text(), instance.id);
  const match = new RegExp(`^${series.replace(/[{}]/g, (brace) => `\\${brace}`)} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

/**
 * Checks that `steps` are one attempt's start and success on one instance
 * (number `attempt` of its job), and returns which instance.
 */
function succeededOn(steps: readonly string[], attempt: number, context: string): number {
  const on = steps[0]?.split('@')[1] ?? '?';
  expect(steps, context).toEqual([`started#${attempt}@${on}`, `succeeded#${attempt}@${on}`]);
  return Number(on);
}

/** No file of any job is left in the shared temp folder (a job's files go right after its end is recorded). */
async function tempEmptied(cluster: Cluster): Promise<void> {
  await waitFor(() => tempFiles(cluster.dataDir).length === 0, 5_000).catch(() => undefined);
  expect(tempFiles(cluster.dataDir)).toEqual([]);
}

describe.skipIf(!onPostgres)('three instances on one PostgreSQL queue and one DATA_DIR', () => {
  it('300 jobs submitted round-robin all succeed, each by exactly one counted attempt, converted by every instance, leaving no temp file', async () => {
    const cluster = await startCluster({ MAX_CONCURRENT_JOBS: '4', CONVERT_CONCURRENCY: '1' });
    const { instances } = cluster;
    const image = await gradientJpeg(96, 64);
    const ids: number[] = [];
    let next = 0;
    // Six clients at once, each taking the next job for the next instance in turn.
    await Promise.all(Array.from({ length: 6 }, async () => {
      for (let n = next++; n < 300; n = next++) ids.push(await submit(instances[n % 3] as Instance, image));
    }));
    expect(new Set(ids).size).toBe(300);

    const jobs = await cluster.allEnded();
    expect(jobs.map((job) => job.id).sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b));
    expect(jobs.filter((job) => job.status !== 'succeeded' || job.attempts !== 1)).toEqual([]);
    // No lease was lost, no attempt returned or retried: each job is one attempt, started and ended by one instance.
    const events = await cluster.events();
    const byInstance = [0, 0, 0];
    for (const id of ids) {
      const on = succeededOn((events.get(id) ?? []).map((event) => step(event, instances)), 1, `job ${id}`);
      byInstance[on] = (byInstance[on] ?? 0) + 1;
    }
    // Submissions wake the others (NOTIFY): every instance converted a share, not only the one each job was sent to.
    expect(byInstance.every((count) => count > 0), `jobs per instance: ${byInstance.join(', ')}`).toBe(true);
    // Each result is in the shared output folder, written by whichever instance converted it.
    for (const id of ids) expect(fs.readdirSync(path.join(cluster.dataDir, 'output', String(id)))).toEqual(['0.webp']);
    await tempEmptied(cluster);
    for (const instance of instances) expect(await instance.kill('SIGTERM'), instance.logTail()).toEqual({ code: 0, signal: null });
  }, 120_000);

  it('an instance killed with SIGKILL while it holds running jobs loses none: the others take them up once its lease expires, and every job succeeds', async () => {
    const target = await holdingTarget();
    // A short lease (renewed every second) so the dead instance's jobs come back within seconds.
    const cluster = await startCluster({ MAX_CONCURRENT_JOBS: '2', LEASE_MS: '3000' });
    const { instances } = cluster;
    const image = await gradientJpeg(96, 64);
    const ids: number[] = [];
    for (let n = 0; n < 6; n += 1) ids.push(await submit(instances[n % 3] as Instance, image, target));
    // Six attempts held mid-delivery: two on each instance, whose slots are full.
    await waitFor(() => target.held() === 6, 20_000);
    const running = await cluster.jobs();
    const [victim, ...survivors] = instances as [Instance, Instance, Instance];
    const victimJobs = running.filter((job) => job.lease_owner === victim.id).map((job) => job.id);
    expect(victimJobs).toHaveLength(2);

    expect((await victim.kill('SIGKILL')).signal).toBe('SIGKILL');
    // Its leases as it left them: nothing renews them now.
    const leases = await cluster.leasesOf(victim.id);
    expect([...leases.keys()].sort()).toEqual([...victimJobs].sort());
    // The killed process's uploads die with it; the others' go on, and are answered now.
    await waitFor(() => target.cut.length === 2);
    expect(target.cut.sort()).toEqual(victimJobs.map(uploadPath).sort());
    target.openUp();

    const jobs = await cluster.allEnded(30_000);
    expect(jobs.map((job) => job.status)).toEqual(ids.map(() => 'succeeded'));
    const events = await cluster.events();
    for (const job of jobs) {
      const steps = (events.get(job.id) ?? []).map((event) => step(event, instances));
      if (victimJobs.includes(job.id)) {
        // The lost attempt counts (a job that kills its process must not loop forever); the next runs on a survivor.
        expect(job.attempts).toBe(2);
        expect(steps.slice(0, 2), `job ${job.id}`).toEqual(['started#1@0', 'lost#1@0']);
        expect([1, 2]).toContain(succeededOn(steps.slice(2), 2, `job ${job.id}`));
        // Taken up once its lease had expired, not before: the survivors never presume a process dead.
        const lost = events.get(job.id)?.find((event) => event.kind === 'lost');
        expect(lost?.at).toBeGreaterThan(leases.get(job.id) ?? Number.POSITIVE_INFINITY);
        expect(target.received.filter((where) => where === uploadPath(job.id))).toHaveLength(2);
      } else {
        expect(job.attempts).toBe(1);
        expect([1, 2]).toContain(succeededOn(steps, 1, `job ${job.id}`));
      }
    }
    await tempEmptied(cluster);
    for (const instance of survivors) expect(await instance.kill('SIGTERM'), instance.logTail()).toEqual({ code: 0, signal: null });
  }, 90_000);

  it('a cancel through one instance stops the attempt running on another at once, by its signal: the upload is cut, the attempt ends cancelled there, and the job\'s files go', async () => {
    const target = await holdingTarget();
    const cluster = await startCluster();
    const { instances } = cluster;
    const id = await submit(instances[0] as Instance, await gradientJpeg(96, 64), target);
    await waitFor(() => target.held() === 1, 20_000);
    const [running] = await cluster.jobs();
    const runner = instances.find((instance) => instance.id === running?.lease_owner) as Instance;
    const canceller = instances.find((instance) => instance !== runner) as Instance;

    const cancelled = await call(`${canceller.url}/jobs/${id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    // The runner's attempt stops: its upload is cut, and the attempt ends as `cancelled` there. An attempt
    // stopped by its next heartbeat finding the job gone instead (10 s away, with the default lease) would
    // end `superseded`: only the cancel's signal explains this outcome.
    await waitFor(() => target.cut.includes(uploadPath(id)), 5_000);
    await waitFor(async () => (await sample(runner, 'image_jobs_attempts_total{outcome="cancelled"}')) === 1, 5_000);
    expect(await sample(runner, 'image_jobs_attempts_total{outcome="superseded"}')).toBe(0);
    const events = await cluster.events();
    expect(events.get(id)?.map((event) => step(event, instances))).toEqual([
      `started#1@${instances.indexOf(runner)}`,
      `cancelled#1@${instances.indexOf(runner)}`,
    ]);
    // Its input (released by the cancel) and its converted output (removed by the runner's attempt as it stopped).
    await tempEmptied(cluster);
  });

  it('a request waiting (Prefer: wait) on one instance answers when another instance ends the job, before its own wait could have run out', async () => {
    const target = await holdingTarget();
    const cluster = await startCluster();
    const { instances } = cluster;
    const image = await gradientJpeg(96, 64);
    /**
     * With `wait=1` the waiting instance reads the job when the request
     * arrives, then again only when its second is up. An answer that says
     * `succeeded` less than a second after the request was sent, for a job
     * still running when the wait began, was woken by the end's signal from
     * the other instance. A try the loaded machine makes too slow to tell is
     * made again with a new job; a missing signal fails every try.
     */
    const tries: string[] = [];
    for (let attempt = 0; attempt < 3 && !tries.some((found) => found.startsWith('signal')); attempt += 1) {
      const id = await submit(instances[attempt % 3] as Instance, image, target);
      await waitFor(() => target.held() === 1, 20_000);
      const [running] = (await cluster.jobs()).filter((job) => job.id === id);
      const waiter = instances.find((instance) => instance.id !== running?.lease_owner) as Instance;

      const sent = Date.now();
      const waiting = call(`${waiter.url}/jobs/${id}`, { headers: { prefer: 'wait=1' } });
      await waitFor(async () => (await sample(waiter, 'image_jobs_waiting_requests')) === 1, 5_000, 5);
      target.answer(uploadPath(id));
      const answered = await waiting;
      const tookMs = Date.now() - sent;
      expect(answered.status).toBe(200);
      expect(answered.headers.get('preference-applied')).toBe('wait=1');
      tries.push(`${answered.body.status === 'succeeded' && tookMs < 1_000 ? 'signal' : 'inconclusive'}: ${String(answered.body.status)} after ${tookMs} ms`);
      expect((await jobEnded(waiter.url, id)).status).toBe('succeeded');
    }
    expect(tries.filter((found) => found.startsWith('signal')), tries.join('; ')).toHaveLength(1);
  });

  it('SIGTERM of one instance puts its running attempts back uncounted and exits 0, while the others go on and then finish those jobs too', async () => {
    const target = await holdingTarget();
    const cluster = await startCluster({ MAX_CONCURRENT_JOBS: '2', SHUTDOWN_GRACE_MS: '300' });
    const { instances } = cluster;
    const image = await gradientJpeg(96, 64);
    const ids: number[] = [];
    for (let n = 0; n < 6; n += 1) ids.push(await submit(instances[n % 3] as Instance, image, target));
    await waitFor(() => target.held() === 6, 20_000);
    const [leaving, ...staying] = instances as [Instance, Instance, Instance];
    const before = await cluster.jobs();
    const leavingJobs = before.filter((job) => job.lease_owner === leaving.id).map((job) => job.id);
    expect(leavingJobs).toHaveLength(2);

    expect(await leaving.kill('SIGTERM'), leaving.logTail()).toEqual({ code: 0, signal: null });
    await waitFor(() => target.cut.length === 2);
    // Its two jobs are back in the queue, their attempt not counted; the others' four still run where they ran.
    const after = await cluster.jobs();
    expect(after.filter((job) => leavingJobs.includes(job.id)).map((job) => [job.status, job.attempts])).toEqual([['queued', 0], ['queued', 0]]);
    expect(after.filter((job) => !leavingJobs.includes(job.id))).toEqual(before.filter((job) => !leavingJobs.includes(job.id)));
    expect(target.cut.sort()).toEqual(leavingJobs.map(uploadPath).sort());
    target.openUp();

    const jobs = await cluster.allEnded(30_000);
    expect(jobs.map((job) => [job.status, job.attempts])).toEqual(ids.map(() => ['succeeded', 1]));
    const events = await cluster.events();
    for (const job of jobs) {
      const steps = (events.get(job.id) ?? []).map((event) => step(event, instances));
      if (leavingJobs.includes(job.id)) {
        expect(steps.slice(0, 2), `job ${job.id}`).toEqual(['started#1@0', 'returned#1@0']);
        expect([1, 2]).toContain(succeededOn(steps.slice(2), 1, `job ${job.id}`));
      } else {
        const owner = instances.findIndex((instance) => instance.id === before.find((row) => row.id === job.id)?.lease_owner);
        expect(steps, `job ${job.id}`).toEqual([`started#1@${owner}`, `succeeded#1@${owner}`]);
      }
    }
    await tempEmptied(cluster);
    for (const instance of staying) expect(await instance.kill('SIGTERM'), instance.logTail()).toEqual({ code: 0, signal: null });
  });
});
