/**
 * CPU per image, side by side: the service (started by scripts/start.sh, as
 * `npm start` does) and plain sharp (bench/plainSharp.ts: sharp as it comes,
 * in the machine's default environment) convert the same real-size photo at
 * the same time, so that both see the same machine, round after round.
 *
 * When conversions keep every core busy (as in the soak), images/s is the
 * cores' time over the CPU time an image costs, so CPU per image compares
 * the two as `ratio_speed` does, with no time between them for a shared
 * machine to drift in (the soak spreads that drift by taking turns).
 * Images/s of two processes running at once compares nothing (the kernel
 * shares the cores by thread, not by process), so none is printed.
 *
 * Each round measures the service against plain sharp, then the durable
 * floor (bench/durableFloor.ts: upload to a temp file, fsyncs, header, the
 * service's converter, nothing else) against plain sharp again. What the
 * service costs above the floor is what its database, queue, API, logs,
 * metrics and the client's second request per job (the wait for its end)
 * cost; what the floor costs above plain sharp is the upload and the fsyncs
 * that durability asks for. The floor runs in the service's own environment
 * (read from /proc/<pid>/environ), so both have scripts/start.sh's allocator
 * settings.
 *
 * Per pair: the server's CPU over `--jobs` images (all threads, from
 * /proc/<pid>/stat), its client's (this process: submitting, and for the
 * service waiting for each job's end and reading its log), and plain sharp's
 * over as many conversions (its own report). `cpu_ratio` is plain sharp's
 * over the service's and its client's, `cpu_ratio_service` over the
 * service's alone, `cpu_ratio_floor` plain sharp's over the floor's and its
 * client's. The medians of the rounds are printed last.
 *
 * The service takes its settings from the environment as it always does
 * (`MALLOC_MMAP_THRESHOLD_=… npm run bench:cpu` measures another threshold,
 * for the floor too); plain sharp never inherits them.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../src/config.js';
import { benchServiceEnv, spawnServer, type Child } from './lib/childService.js';
import { compileForNode } from './lib/compile.js';
import { loadAverages, median } from './lib/figures.js';
import { postLoad } from './lib/httpLoad.js';
import { driveJobs } from './lib/jobDriver.js';
import { cpuSeconds, environment, nodeFlags } from './lib/processStats.js';
import { plainBaseline, realSizeImage, startSharpLoop } from './lib/sharpLoop.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '300' }, rounds: { type: 'string', default: '3' } } });
const jobs = Number(values.jobs);
const rounds = Number(values.rounds);
if (!Number.isInteger(jobs) || jobs < 8) throw new Error('--jobs must be an integer of at least 8');
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');

const root = path.resolve(import.meta.dirname, '..');
/** Jobs, and plain sharp's conversions, run before each measured pair, in multiples of the images kept outstanding. */
const WARM_UP_ROUNDS = 2;

const perImage = (seconds: number): number => (seconds / jobs) * 1_000;

/** A server converting the photo, and how its client pushes `total` images through it (every one must convert). */
interface Contender {
  readonly name: 'service' | 'floor';
  readonly child: Child;
  drive(total: number): Promise<void>;
}

/** CPU per image, in ms, of one pair: a server and its client against plain sharp at the same time. */
interface Pair {
  readonly server: number;
  readonly mainThread: number;
  readonly client: number;
  readonly plain: number;
}

const ratio = (pair: Pair): number => pair.plain / (pair.server + pair.client);

async function measure(contender: Contender, run: { config: Config; input: string; out: string; warmUp: number }): Promise<Pair> {
  const pid = contender.child.process.pid;
  if (pid === undefined) throw new Error(`the ${contender.name} has no pid`);
  const plain = startSharpLoop({ root, baseline: plainBaseline(), config: run.config, input: run.input, out: run.out, warmUp: run.warmUp });
  const plainPid = plain.process.pid;
  if (plainPid === undefined) throw new Error('plain sharp has no pid');
  // Plain sharp warms up and converts while the contender does; its CPU is read from outside, as the contender's is.
  const plainSegment = plain.ready.then(async () => {
    const cpuBefore = cpuSeconds(plainPid);
    await plain.segment(jobs);
    return cpuSeconds(plainPid) - cpuBefore;
  });
  let before: { server: number; mainThread: number; client: NodeJS.CpuUsage };
  try {
    await contender.drive(run.warmUp);
    before = { server: cpuSeconds(pid), mainThread: cpuSeconds(pid, 'main thread'), client: process.cpuUsage() };
    await contender.drive(jobs);
  } catch (error) {
    // A failed pair leaves no sharp loop running behind it.
    plain.process.kill('SIGKILL');
    await plain.finish().catch(() => undefined);
    await plainSegment.catch(() => undefined);
    throw error;
  }
  const client = process.cpuUsage(before.client);
  const plainCpu = await plainSegment;
  await plain.finish();
  return {
    server: perImage(cpuSeconds(pid) - before.server),
    mainThread: perImage(cpuSeconds(pid, 'main thread') - before.mainThread),
    client: perImage((client.user + client.system) / 1e6),
    plain: perImage(plainCpu),
  };
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const floorEntry = compileForNode(root, 'bench/durableFloor.ts');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cpu-'));
  const serviceEnv = benchServiceEnv(path.join(scratch, 'ours'));
  const servers: Child[] = [];
  try {
    const service = await spawnServer('sh', ['scripts/start.sh'], serviceEnv, root);
    servers.push(service);
    const pid = service.process.pid;
    if (pid === undefined) throw new Error('the service has no pid');
    const floor = await spawnServer(process.execPath, [...nodeFlags(pid), floorEntry], { ...environment(pid), DATA_DIR: path.join(scratch, 'floor') }, root);
    servers.push(floor);

    const input = await realSizeImage(root, scratch);
    const image = fs.readFileSync(input);
    const config = loadConfig({ ...process.env, ...serviceEnv });
    const inFlight = config.maxConcurrentJobs * 2;
    const agent = new http.Agent({ keepAlive: true });
    const contenders: Contender[] = [
      {
        name: 'service',
        child: service,
        drive: async (total) => {
          const { statuses } = await driveJobs({ bases: [`http://127.0.0.1:${service.port}`], agent, bodies: [image], contentType: 'image/jpeg', total, inFlight });
          // CPU per image means something only if every job converted its image.
          if (statuses.succeeded !== total) throw new Error(`not every job succeeded: ${JSON.stringify(statuses)}`);
        },
      },
      {
        name: 'floor',
        child: floor,
        drive: async (total) => {
          const { statuses } = await postLoad({ url: `http://127.0.0.1:${floor.port}/`, body: image, headers: { 'content-type': 'image/jpeg' }, requests: total, concurrency: inFlight });
          if (statuses[200] !== total) throw new Error(`not every image converted: ${JSON.stringify(statuses)}`);
        },
      },
    ];

    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores, node ${process.version}, ${os.type()} ${os.release()}`);
    console.log(`command: npm run bench:cpu -- --jobs ${jobs} --rounds ${rounds}`);
    console.log(`load average at start: ${loadAverages()}`);
    console.log(`image: ${path.relative(root, input)} (${image.length} bytes) -> webp quality ${config.webpQuality} effort ${config.webpEffort}`);
    console.log(`service and floor: ${inFlight} images outstanding, CONVERT_CONCURRENCY=${config.convertConcurrency}; plain sharp: ${config.convertConcurrency} conversions in flight`);

    const results = { service: [] as Pair[], floor: [] as Pair[] };
    for (let round = 1; round <= rounds; round += 1) {
      for (const contender of contenders) {
        const out = path.join(scratch, `plain-${round}-${contender.name}`);
        const pair = await measure(contender, { config, input, out, warmUp: inFlight * WARM_UP_ROUNDS });
        results[contender.name].push(pair);
        console.log(
          `round ${round}, ${contender.name.padEnd(7)}: plain sharp ${pair.plain.toFixed(1)} ms/image; ${contender.name} ${pair.server.toFixed(1)} (main thread ${pair.mainThread.toFixed(1)}) + client ${pair.client.toFixed(1)} ms/image; cpu_ratio ${ratio(pair).toFixed(3)}`,
        );
      }
    }
    agent.destroy();

    console.log(`median of ${rounds} round(s), CPU per image (all threads, user + system):`);
    for (const contender of contenders) {
      const of = (pick: (pair: Pair) => number): string => median(results[contender.name].map(pick)).toFixed(1);
      console.log(`${contender.name.padEnd(7)}: plain sharp ${of((p) => p.plain)} ms; ${contender.name} ${of((p) => p.server)} ms (main thread ${of((p) => p.mainThread)}); client ${of((p) => p.client)} ms`);
    }
    const ratioOf = (pairs: Pair[], pick: (pair: Pair) => number): string => median(pairs.map(pick)).toFixed(3);
    console.log(`cpu_ratio=${ratioOf(results.service, ratio)}`);
    console.log(`cpu_ratio_service=${ratioOf(results.service, (p) => p.plain / p.server)}`);
    console.log(`cpu_ratio_floor=${ratioOf(results.floor, ratio)}`);
    console.log(`load average at end: ${loadAverages()}`);
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
