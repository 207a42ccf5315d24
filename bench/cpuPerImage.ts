/**
 * CPU per image, side by side: the service (started by scripts/start.sh, as
 * `npm start` does) and plain sharp (bench/plainSharp.ts: sharp as it comes,
 * in the machine's default environment) convert the same real-size photo at
 * the same time, so that both see the same machine, round after round.
 *
 * When conversions keep every core busy (as in the soak), images/s is the
 * cores' time over the CPU time an image costs, so CPU per image compares
 * the two as `ratio_speed` does, without the drift of a shared machine
 * between two phases run one after the other. Images/s of two processes
 * running at once compares nothing (the kernel shares the cores by thread,
 * not by process), so none is printed.
 *
 * Per round: the service's CPU over `--jobs` jobs (all threads, from
 * /proc/<pid>/stat), the client's (this process: submitting, polling, reading
 * the service's log), and plain sharp's over as many conversions (its own
 * report); `cpu_ratio` is plain sharp's over the service's and its client's,
 * `cpu_ratio_service` over the service's alone. The median of the rounds is
 * printed last.
 *
 * The service takes its settings from the environment as it always does
 * (`MALLOC_MMAP_THRESHOLD_=… npm run bench:cpu` measures another threshold);
 * plain sharp never inherits them.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { spawnServer } from './lib/childService.js';
import { loadAverages, median } from './lib/figures.js';
import { driveJobs } from './lib/jobDriver.js';
import { cpuSeconds } from './lib/processStats.js';
import { plainBaseline, realSizeImage, startSharpLoop } from './lib/sharpLoop.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '300' }, rounds: { type: 'string', default: '3' } } });
const jobs = Number(values.jobs);
const rounds = Number(values.rounds);
if (!Number.isInteger(jobs) || jobs < 8) throw new Error('--jobs must be an integer of at least 8');
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');

const root = path.resolve(import.meta.dirname, '..');
/** Jobs, and plain sharp's conversions, run before each measured round, in multiples of the jobs kept outstanding. */
const WARM_UP_ROUNDS = 2;

const perImage = (seconds: number): number => (seconds / jobs) * 1_000;

interface Round {
  readonly service: number;
  readonly mainThread: number;
  readonly client: number;
  readonly plain: number;
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cpu-'));
  // The bench reads the port from the service's `listening` log line, written at level info.
  const serviceEnv = { DATA_DIR: path.join(scratch, 'ours'), PORT: '0', MIN_FREE_DISK_BYTES: '0', LOG_LEVEL: 'info' };
  const child = await spawnServer('sh', ['scripts/start.sh'], serviceEnv, root);
  try {
    const pid = child.process.pid;
    if (pid === undefined) throw new Error('the service has no pid');
    const input = await realSizeImage(root, scratch);
    const image = fs.readFileSync(input);
    const config = loadConfig({ ...process.env, ...serviceEnv });
    const inFlight = config.maxConcurrentJobs * 2;
    const warmUp = inFlight * WARM_UP_ROUNDS;
    const agent = new http.Agent({ keepAlive: true });
    const drive = (total: number) => driveJobs({ base: `http://127.0.0.1:${child.port}`, agent, body: image, contentType: 'image/jpeg', total, inFlight });

    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores, node ${process.version}, ${os.type()} ${os.release()}`);
    console.log(`command: npm run bench:cpu -- --jobs ${jobs} --rounds ${rounds}`);
    console.log(`load average at start: ${loadAverages()}`);
    console.log(`image: ${path.relative(root, input)} (${image.length} bytes) -> webp quality ${config.webpQuality} effort ${config.webpEffort}`);
    console.log(`service: ${inFlight} jobs outstanding, CONVERT_CONCURRENCY=${config.convertConcurrency}; plain sharp: ${config.convertConcurrency} conversions in flight`);

    const results: Round[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      const plain = startSharpLoop({ root, baseline: plainBaseline(), config, input, out: path.join(scratch, `plain-${round}`), count: jobs, warmUp });
      let before: { service: number; mainThread: number; client: NodeJS.CpuUsage };
      try {
        await drive(warmUp);
        before = { service: cpuSeconds(pid), mainThread: cpuSeconds(pid, 'main thread'), client: process.cpuUsage() };
        const { statuses } = await drive(jobs);
        // CPU per image means something only if every job converted its image.
        if (statuses.succeeded !== jobs) throw new Error(`not every job succeeded: ${JSON.stringify(statuses)}`);
      } catch (error) {
        // A failed round leaves no sharp loop running behind it.
        plain.process.kill('SIGKILL');
        await plain.done.catch(() => undefined);
        throw error;
      }
      const client = process.cpuUsage(before.client);
      const result: Round = {
        service: perImage(cpuSeconds(pid) - before.service),
        mainThread: perImage(cpuSeconds(pid, 'main thread') - before.mainThread),
        client: perImage((client.user + client.system) / 1e6),
        plain: perImage((await plain.done).cpuSeconds),
      };
      results.push(result);
      console.log(
        `round ${round}: plain sharp ${result.plain.toFixed(1)} ms/image; service ${result.service.toFixed(1)} (main thread ${result.mainThread.toFixed(1)}) + client ${result.client.toFixed(1)} ms/image; cpu_ratio ${(result.plain / (result.service + result.client)).toFixed(3)}`,
      );
    }
    agent.destroy();

    const of = (pick: (round: Round) => number): number => median(results.map(pick));
    console.log(`median of ${rounds} round(s), CPU per image (all threads, user + system):`);
    console.log(`plain sharp ${of((r) => r.plain).toFixed(1)} ms; service ${of((r) => r.service).toFixed(1)} ms (main thread ${of((r) => r.mainThread).toFixed(1)}); client ${of((r) => r.client).toFixed(1)} ms`);
    console.log(`cpu_ratio=${of((r) => r.plain / (r.service + r.client)).toFixed(3)}`);
    console.log(`cpu_ratio_service=${of((r) => r.plain / r.service).toFixed(3)}`);
    console.log(`load average at end: ${loadAverages()}`);
  } finally {
    await child.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
