/**
 * Before against after: the original write-up's claims measured side by
 * side. The "before" (bench/before/server.ts: the service as it was, with
 * the five defects its write-up lists) and the service as `npm start` runs
 * it (scripts/start.sh, the bench environment of the soak) get the same load
 * from the same client (bench/lib/jobDriver.ts): `--jobs` image jobs, the
 * shared 2 MP and 6 MP photos in turn, `--in-flight` of them outstanding,
 * each submitted with `POST /jobs` and waited for with `GET /jobs/{id}` and
 * `Prefer: wait`. Each process lives for the whole run, as a service would;
 * they take turns on the machine, `--rounds` times, in an order that rotates,
 * so that a shared machine's drift falls on both.
 *
 * The before runs under plain node in the machine's default environment (no
 * allocator or thread-pool tuning, as it was), inside a memory ceiling of
 * `--memory-max-mib` (a cgroup: bench/lib/memoryCeiling.ts); an out-of-memory
 * death there is a result, reported as one, and its turns stop there.
 *
 * Printed for each: jobs ended, peak RSS and RSS at the end (from /proc,
 * every 250 ms), CPU seconds per image (all threads, from /proc, as the soak
 * reads them, over the turns that ran to their end: a turn cut short by a
 * death spent CPU on jobs that never ended), p50 and p95 latency from submission to the end seen,
 * images/s over its turns, whether it survived. Then the three reductions
 * beside the write-up's claims, each on a line of its own.
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
import { compileForNode } from './lib/compile.js';
import { loadAverages, percentile } from './lib/figures.js';
import { driveJobs } from './lib/jobDriver.js';
import { createMemoryCeiling, type MemoryCeiling } from './lib/memoryCeiling.js';
import { sharedPhotos } from './lib/photos.js';
import { cpuSeconds, residentMemory, sampleRss, type RssSampler } from './lib/processStats.js';
import { plainBaseline } from './lib/sharpLoop.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '1000' },
    'in-flight': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '2' },
    'memory-max-mib': { type: 'string', default: '2048' },
  },
});
const jobs = Number(values.jobs);
const inFlight = Number(values['in-flight']);
const rounds = Number(values.rounds);
const memoryMaxMiB = Number(values['memory-max-mib']);
for (const [name, value] of Object.entries({ jobs, 'in-flight': inFlight, rounds, 'memory-max-mib': memoryMaxMiB })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
}

const root = path.resolve(import.meta.dirname, '..');
/** The real photos of the load, submitted in turn: one of about 2 MP, one of about 6 MP. */
const PHOTOS = ['flowers.jpeg', '2569067123_aca715a2ee_o.jpg'];
const SAMPLE_INTERVAL_MS = 250;
/** How long each side is left alone after its last turn before its RSS at the end is read. */
const REST_MS = 2_000;
const MIB = 1024 * 1024;

/** What the original write-up claimed its fixes bought, as fractions saved. */
const CLAIMS = { memory: [0.6, 0.8], cpu: [0.2, 0.3], latency: [0.15, 0.25] } as const;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One of the two servers under the same load, and what it did. */
interface Side {
  readonly name: 'before' | 'after';
  readonly child: Child;
  readonly pid: number;
  readonly agent: http.Agent;
  readonly rss: RssSampler;
  /** The process's CPU seconds at the last reading: read every SAMPLE_INTERVAL_MS, it outlives the process. */
  cpu: number;
  readonly cpuTimer: NodeJS.Timeout;
  readonly latenciesMs: number[];
  readonly statuses: Record<string, number>;
  seconds: number;
  /** CPU seconds and jobs ended over the turns that ran to their end. */
  cpuSpent: number;
  cpuJobs: number;
  readonly ceiling: MemoryCeiling | null;
}

const gone = (side: Side): boolean => side.child.process.exitCode !== null || side.child.process.signalCode !== null;

function readCpu(side: Side): number {
  if (!gone(side)) {
    try {
      side.cpu = cpuSeconds(side.pid);
    } catch {
      // It ended between the check and the read: the last reading stands.
    }
  }
  return side.cpu;
}

function watch(name: Side['name'], child: Child, origin: number, ceiling: MemoryCeiling | null): Side {
  const pid = child.process.pid;
  if (pid === undefined) throw new Error(`the ${name} has no pid`);
  const side: Side = {
    name,
    child,
    pid,
    agent: new http.Agent({ keepAlive: true }),
    rss: sampleRss(pid, SAMPLE_INTERVAL_MS, origin),
    cpu: cpuSeconds(pid),
    cpuTimer: setInterval(() => readCpu(side), SAMPLE_INTERVAL_MS),
    latenciesMs: [],
    statuses: {},
    seconds: 0,
    cpuSpent: 0,
    cpuJobs: 0,
    ceiling,
  };
  return side;
}

const ended = (side: Side): number => side.latenciesMs.length;

/**
 * One turn of `total` jobs; a server that dies during it ends its turn, and
 * its later ones, there. Answers the turn's CPU seconds per job ended, or
 * null when it was cut short.
 */
async function takeTurn(side: Side, total: number, bodies: readonly Buffer[]): Promise<number | null> {
  const cpuBefore = readCpu(side);
  const jobsBefore = ended(side);
  const started = performance.now();
  try {
    await driveJobs({
      bases: [`http://127.0.0.1:${side.child.port}`],
      agent: side.agent,
      bodies,
      contentType: 'image/jpeg',
      total,
      inFlight,
      onEnd: (status, latencyMs) => {
        side.latenciesMs.push(latencyMs);
        side.statuses[status] = (side.statuses[status] ?? 0) + 1;
      },
    });
  } catch (error) {
    // Its requests fail the moment it dies; the exit is seen a moment later.
    await delay(500);
    if (!gone(side)) throw error;
    side.seconds += (performance.now() - started) / 1_000;
    return null;
  }
  side.seconds += (performance.now() - started) / 1_000;
  const cpu = readCpu(side) - cpuBefore;
  side.cpuSpent += cpu;
  side.cpuJobs += ended(side) - jobsBefore;
  return cpu / (ended(side) - jobsBefore);
}

/** How the process ended, or that it survived. */
function fate(side: Side): string {
  if (!gone(side)) return 'survived';
  const { exitCode, signalCode } = side.child.process;
  const oom = side.ceiling ? `; out-of-memory kills in its ${side.ceiling.limitBytes / MIB} MiB ceiling: ${side.ceiling.oomKills()}` : '';
  return `DIED (${signalCode ?? `exit ${exitCode}`}${oom})`;
}

/** Where a measured reduction falls against the claimed range. */
function against([low, high]: readonly [number, number], value: number): string {
  const range = `claimed ${low.toFixed(2)}-${high.toFixed(2)}`;
  if (Number.isNaN(value)) return `${range}: not measured (no job ended on one side)`;
  if (value < low) return `${range}: below the claim`;
  return value > high ? `${range}: above the claim` : `${range}: within the claim`;
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const beforeEntry = compileForNode(root, 'bench/before/server.ts');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-before-after-'));
  const ceiling = createMemoryCeiling(`image-jobs-before-${process.pid}`, memoryMaxMiB * MIB);
  const sides: Side[] = [];
  try {
    const files = PHOTOS.map((name) => path.join(sharedPhotos(root), name));
    const bodies = files.map((file) => fs.readFileSync(file));
    const serviceEnv = benchServiceEnv(path.join(scratch, 'after'));
    const config = loadConfig({ ...process.env, ...serviceEnv });

    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.type()} ${os.release()}`);
    console.log(`command: npm run bench:before-after -- --jobs ${jobs} --in-flight ${inFlight} --rounds ${rounds} --memory-max-mib ${memoryMaxMiB}`);
    console.log(`load average at start: ${loadAverages()}`);
    for (const [k, file] of files.entries()) {
      const meta = await sharp(file).metadata();
      console.log(`photo ${k + 1}: ${path.relative(root, file)} (${meta.width}x${meta.height} ${meta.format}, ${bodies[k]?.length} bytes)`);
    }
    console.log(`load: ${jobs} jobs, the photos in turn, ${inFlight} outstanding, ${rounds} rounds of turns`);
    console.log(`before: bench/before/server.ts under plain node, the machine's default environment, WebP quality 100, no limit on jobs at once; memory ceiling ${memoryMaxMiB} MiB (cgroup)`);
    console.log(`after: scripts/start.sh (npm start), WebP quality ${config.webpQuality}, MAX_CONCURRENT_JOBS=${config.maxConcurrentJobs} CONVERT_CONCURRENCY=${config.convertConcurrency}\n`);

    const origin = performance.now();
    const plain = plainBaseline();
    const wrapped = ceiling.wrap(process.execPath, [beforeEntry]);
    sides.push(watch('before', await spawnServer(wrapped.command, wrapped.args, { ...plain.env, PORT: '0' }, root), origin, ceiling));
    sides.push(watch('after', await spawnServer('sh', ['scripts/start.sh'], serviceEnv, root), origin, null));

    const share = (round: number): number => Math.floor(jobs / rounds) + (round < jobs % rounds ? 1 : 0);
    for (let round = 0; round < rounds; round += 1) {
      const load = loadAverages();
      for (let k = 0; k < sides.length; k += 1) {
        const side = sides[(round + k) % sides.length] as Side;
        if (gone(side)) continue;
        const [seconds, count] = [side.seconds, ended(side)];
        const cpu = await takeTurn(side, share(round), bodies);
        const rss = residentMemory(side.pid);
        const turnSpeed = (ended(side) - count) / (side.seconds - seconds);
        const turnCpu = cpu === null ? 'CPU not counted (cut short)' : `CPU ${cpu.toFixed(3)} s/image`;
        console.log(
          `round ${round + 1} (load ${load}) ${side.name}: ${ended(side) - count} jobs ended, ${turnSpeed.toFixed(2)} images/s, ${turnCpu}, RSS after ${rss ? `${(rss.rssBytes / MIB).toFixed(1)} MiB` : '- (gone)'}; ${fate(side)}`,
        );
      }
    }
    await delay(REST_MS);

    const rows = sides.map((side) => {
      clearInterval(side.cpuTimer);
      side.agent.destroy();
      const samples = side.rss.stop();
      const sorted = [...side.latenciesMs].sort((a, b) => a - b);
      const last = gone(side) ? null : samples.at(-1);
      return {
        side,
        peakRss: Math.max(...samples.map((s) => s.rssBytes)),
        endRss: last ? last.rssBytes : Number.NaN,
        cpuPerImage: side.cpuSpent / side.cpuJobs,
        p50: percentile(sorted, 0.5),
        p95: percentile(sorted, 0.95),
        speed: ended(side) / side.seconds,
      };
    });
    console.log('');
    console.log('side    jobs ended  peak RSS MiB  end RSS MiB  CPU s/image  p50 s    p95 s    images/s  process');
    for (const row of rows) {
      const statuses = Object.entries(row.side.statuses).map(([status, n]) => `${status} ${n}`).join(', ');
      const endRss = Number.isNaN(row.endRss) ? '-' : (row.endRss / MIB).toFixed(1);
      console.log(
        `${row.side.name.padEnd(7)} ${String(ended(row.side)).padStart(10)}  ${(row.peakRss / MIB).toFixed(1).padStart(12)}  ${endRss.padStart(11)}  ${row.cpuPerImage.toFixed(3).padStart(11)}  ${(row.p50 / 1_000).toFixed(2).padStart(7)}  ${(row.p95 / 1_000).toFixed(2).padStart(7)}  ${row.speed.toFixed(2).padStart(8)}  ${fate(row.side)} (${statuses || 'none'} of ${jobs})`,
      );
    }
    const [before, after] = rows as [(typeof rows)[number], (typeof rows)[number]];
    const memory = 1 - after.peakRss / before.peakRss;
    const cpu = 1 - after.cpuPerImage / before.cpuPerImage;
    const latency = 1 - after.p50 / before.p50;
    const latencyP95 = 1 - after.p95 / before.p95;
    console.log('');
    // A ceiling holds the before's peak down: its reduction is then a floor, not the figure.
    const capped = gone(before.side) ? `; the before's peak is held down by its ${memoryMaxMiB} MiB ceiling` : '';
    console.log(`memory_reduction=${memory.toFixed(3)} (peak RSS; ${against(CLAIMS.memory, memory)}${capped})`);
    console.log(`cpu_reduction=${cpu.toFixed(3)} (CPU seconds per image, all threads, over whole turns; ${against(CLAIMS.cpu, cpu)})`);
    console.log(`latency_reduction=${latency.toFixed(3)} (p50, submission to end; ${against(CLAIMS.latency, latency)}; at p95 ${latencyP95.toFixed(3)})`);
    console.log(`crashes: before ${fate(before.side)}, after ${fate(after.side)} (claimed: no memory-related crashes after the fix)`);
    console.log(`load average at end: ${loadAverages()}`);
  } finally {
    for (const side of sides) {
      clearInterval(side.cpuTimer);
      side.agent.destroy();
      await side.child.stop();
    }
    ceiling.remove();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
