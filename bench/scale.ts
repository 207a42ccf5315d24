/**
 * Scale-out: image jobs through 1 and then 2 instances of the service
 * sharing one DATA_DIR, side by side in one run, on each backend:
 *  - sqlite: the instances share one SQLite file in the DATA_DIR;
 *  - postgres: the instances are started with DATABASE_URL set to a fresh
 *    database `imgjobs_bench_<random>` on the server the benches use
 *    (`DATABASE_URL` when set, else postgres://postgres@127.0.0.1:5432),
 *    dropped after its turn. When no server answers, one line says so and
 *    the side is skipped.
 *
 * Each turn starts its instances afresh (the built service through
 * scripts/start.sh, as `npm start` does; each on its own ephemeral PORT) on a
 * fresh DATA_DIR, warms each up with a few jobs sent to it alone (untimed),
 * then pushes `--jobs` jobs of one photo (default the shared 2 MP one)
 * through them with `--in-flight` outstanding whatever the number of
 * instances: each job is submitted to the next instance in turn, as a
 * round-robin load balancer would, and waited for with `Prefer: wait` on the
 * instance that took it (bench/lib/jobDriver.ts). Images/s run from the first
 * submission to the last end seen. Every instance keeps the service's
 * defaults (MAX_CONCURRENT_JOBS, CONVERT_CONCURRENCY), as an operator adding
 * an instance would: two instances hold twice the slots of one on the same
 * cores. A turn of one instance runs no other: an idle instance sharing the
 * queue would claim jobs too.
 *
 * Turns are interleaved over `--rounds` rounds (1 then 2 instances, then 2
 * then 1, …), so a noisy, shared machine's drift falls on both; the median
 * per number of instances gives `ratio_2_vs_1_<backend>=`. On a machine
 * whose cores one instance already fills, a second one cannot add CPU: the
 * ratio then shows what coordinating two instances through one queue costs
 * (1.0: nothing). After each turn, each instance's own count of images it
 * delivered (`image_jobs_images_processed_total` on its /metrics) shows how
 * the work was shared, and the CPU time the instances' processes used in
 * the timed span (all threads, from /proc; the database server's not
 * counted), per image, shows whether two instances spent more of the cores
 * on each image than one.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import { benchServiceEnv, spawnServer, type Child } from './lib/childService.js';
import { loadAverages, median } from './lib/figures.js';
import { send } from './lib/httpLoad.js';
import { driveJobs } from './lib/jobDriver.js';
import { sharedPhotos } from './lib/photos.js';
import { cpuSeconds } from './lib/processStats.js';
import { createBenchDatabase, serverUrl, unreachable } from './lib/postgres.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '200' },
    'in-flight': { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    photo: { type: 'string', default: 'flowers.jpeg' },
  },
});
const jobs = Number(values.jobs);
const inFlight = Number(values['in-flight']);
const rounds = Number(values.rounds);
for (const [name, value] of Object.entries({ jobs, 'in-flight': inFlight, rounds })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
}

const root = path.resolve(import.meta.dirname, '..');
/** Jobs each instance converts alone before a turn is timed: sharp's first images and the JIT's warm-up stay out of it. */
const WARM_UP_JOBS = 10;
const INSTANCE_COUNTS: readonly number[] = [1, 2];

/** Where the instances of a turn keep their queue. */
interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /** Sets up one turn: the environment its instances get on top of the bench's, and what undoes it. */
  prepare(): Promise<{ env: NodeJS.ProcessEnv; release: () => Promise<void> }>;
}

/** A DATABASE_URL the bench itself was given names its PostgreSQL server: the SQLite instances must not inherit it. */
const sqliteBackend: Backend = { name: 'sqlite', prepare: async () => ({ env: { DATABASE_URL: undefined }, release: async () => {} }) };

function postgresBackend(server: string): Backend {
  return {
    name: 'postgres',
    async prepare() {
      const database = await createBenchDatabase(server);
      return { env: { DATABASE_URL: database.url }, release: database.drop };
    },
  };
}

const startInstance = (dataDir: string, env: NodeJS.ProcessEnv): Promise<Child> =>
  spawnServer('sh', ['scripts/start.sh'], { ...benchServiceEnv(dataDir), ...env }, root);

/** The images an instance has delivered since it started, by its own count (the series carries its `instance_id` label). */
async function imagesDelivered(agent: http.Agent, base: string): Promise<number> {
  const reply = await send(agent, 'GET', `${base}/metrics`);
  const line = reply.text.split('\n').find((row) => /^image_jobs_images_processed_total[ {]/.test(row));
  if (reply.status !== 200 || line === undefined) throw new Error(`GET ${base}/metrics answered ${reply.status} without image_jobs_images_processed_total`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

interface Turn {
  readonly imagesPerSec: number;
  readonly seconds: number;
  /** Images each instance delivered in the timed span. */
  readonly shares: readonly number[];
  /** CPU time of the instances' processes (all threads; the database server's excluded) in the timed span, per image. */
  readonly cpuMsPerImage: number;
}

/** One turn of `count` instances on a fresh DATA_DIR (and database), stopped and removed afterwards. */
async function takeTurn(backend: Backend, count: number, scratch: string, photo: Buffer): Promise<Turn> {
  const dataDir = fs.mkdtempSync(path.join(scratch, `${backend.name}-${count}-`));
  const setup = await backend.prepare();
  const instances: Child[] = [];
  const agent = new http.Agent({ keepAlive: true });
  try {
    // One after the other: the first applies the migrations the others then find done.
    for (let i = 0; i < count; i += 1) instances.push(await startInstance(dataDir, setup.env));
    const bases = instances.map((instance) => `http://127.0.0.1:${instance.port}`);
    const drive = (to: readonly string[], total: number, outstanding: number) =>
      driveJobs({ bases: to, agent, bodies: [photo], contentType: 'image/jpeg', total, inFlight: outstanding });
    await Promise.all(bases.map((base) => drive([base], WARM_UP_JOBS, WARM_UP_JOBS)));

    const instancesCpu = (): number => instances.reduce((total, instance) => total + cpuSeconds(instance.process.pid ?? Number.NaN), 0);
    const before = await Promise.all(bases.map((base) => imagesDelivered(agent, base)));
    const cpuBefore = instancesCpu();
    const { seconds, statuses } = await drive(bases, jobs, inFlight);
    const cpuMsPerImage = ((instancesCpu() - cpuBefore) * 1_000) / jobs;
    if (statuses.succeeded !== jobs) throw new Error(`${backend.name}, ${count} instance(s): not every job succeeded: ${JSON.stringify(statuses)}`);
    const after = await Promise.all(bases.map((base) => imagesDelivered(agent, base)));
    return { imagesPerSec: jobs / seconds, seconds, shares: after.map((n, i) => n - (before[i] ?? 0)), cpuMsPerImage };
  } finally {
    agent.destroy();
    for (const instance of instances) await instance.stop();
    await setup.release();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-scale-'));
  try {
    const file = path.join(sharedPhotos(root), values.photo);
    const photo = fs.readFileSync(file);
    const meta = await sharp(file).metadata();
    const config = loadConfig({ ...process.env, ...benchServiceEnv(scratch) });
    const server = serverUrl();

    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores, node ${process.version}, ${os.type()} ${os.release()}`);
    console.log(`command: npm run bench:scale -- --jobs ${jobs} --in-flight ${inFlight} --rounds ${rounds} --photo ${values.photo}`);
    console.log(`load average at start: ${loadAverages()}`);
    console.log(`photo: ${values.photo} (${meta.width}x${meta.height} ${meta.format}, ${photo.length} bytes)`);
    console.log(
      `each turn: fresh instances on a fresh DATA_DIR, ${WARM_UP_JOBS} warm-up jobs each (untimed), then ${jobs} jobs, ${inFlight} outstanding, ` +
        `submitted round-robin; each instance with the service's defaults, MAX_CONCURRENT_JOBS=${config.maxConcurrentJobs} CONVERT_CONCURRENCY=${config.convertConcurrency}`,
    );

    const backends: Backend[] = [sqliteBackend];
    const skipped = await unreachable(server);
    if (skipped === null) backends.push(postgresBackend(server));

    const perTurn = () => new Map(backends.map((backend) => [backend.name, new Map(INSTANCE_COUNTS.map((count) => [count, [] as number[]]))]));
    const speeds = perTurn();
    const cpu = perTurn();
    for (let round = 0; round < rounds; round += 1) {
      const order = round % 2 === 0 ? INSTANCE_COUNTS : [...INSTANCE_COUNTS].reverse();
      for (const backend of backends) {
        for (const count of order) {
          const load = loadAverages();
          const turn = await takeTurn(backend, count, scratch, photo);
          speeds.get(backend.name)?.get(count)?.push(turn.imagesPerSec);
          cpu.get(backend.name)?.get(count)?.push(turn.cpuMsPerImage);
          console.log(
            `round ${round + 1} (load ${load}) ${backend.name} ${count} instance${count === 1 ? '' : 's'}: ` +
              `${turn.imagesPerSec.toFixed(2)} images/s (${jobs} succeeded in ${turn.seconds.toFixed(1)} s), ` +
              `service CPU ${turn.cpuMsPerImage.toFixed(1)} ms/image; images by instance ${turn.shares.join('/')}`,
          );
        }
      }
    }

    const medianSpeed = (backend: Backend, count: number): number => median(speeds.get(backend.name)?.get(count) ?? []);
    const medianCpu = (backend: Backend, count: number): number => median(cpu.get(backend.name)?.get(count) ?? []);
    console.log(`\nmedian of ${rounds} round(s), images/s (service CPU ms per image, the instances' processes, all threads):`);
    console.log('backend   1 instance        2 instances');
    for (const backend of backends) {
      const cell = (count: number): string => `${medianSpeed(backend, count).toFixed(2)} (${medianCpu(backend, count).toFixed(1)})`;
      console.log(`${backend.name.padEnd(9)} ${cell(1).padStart(16)}  ${cell(2).padStart(16)}`);
    }
    for (const backend of backends) {
      const [ones, twos] = [1, 2].map((count) => speeds.get(backend.name)?.get(count) ?? []) as [number[], number[]];
      const byRound = ones.map((one, round) => ((twos[round] ?? Number.NaN) / one).toFixed(2)).join(', ');
      console.log(`ratio_2_vs_1_${backend.name}=${(medianSpeed(backend, 2) / medianSpeed(backend, 1)).toFixed(3)} (rounds: ${byRound})`);
    }
    if (skipped !== null) console.log(`postgres side skipped: ${skipped}`);
    console.log(`load average at end: ${loadAverages()}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
