/**
 * Memory soak: pushes `--jobs` real-size image jobs (default 2,000) through
 * the HTTP API of the built service, started by scripts/start.sh the way
 * `npm start` does, keeping 2 x MAX_CONCURRENT_JOBS jobs outstanding. Its RSS
 * is read from outside (/proc/<pid>/status) every 250 ms, its own figures
 * (`GET /debug/memory-stats`) every second. Sharp alone does as many
 * conversions file to file (same image, pipeline, WebP quality and effort)
 * with CONVERT_CONCURRENCY in flight, in a process of its own that loads
 * nothing but sharp (bench/plainSharp.ts), sampled the same way, twice:
 *
 * - plain sharp, the baseline of `ratio_speed` and `ratio_peak_rss`: sharp as
 *   it comes (its default threads per image and operation cache) under plain
 *   node in the machine's default environment — MALLOC_ARENA_MAX, LD_PRELOAD,
 *   UV_THREADPOOL_SIZE and NODE_OPTIONS removed, so glibc's own arenas and
 *   libuv's own pool. What the service saves against it, it saves by its own
 *   choices (allocator, sharp's settings, node flags);
 * - tuned sharp (`--skip-tuned` leaves it out), the baseline of the
 *   `…_vs_tuned_sharp` ratios: sharp given the service's own settings
 *   (`configureSharp()`), started with the environment and node flags
 *   scripts/start.sh gave the service, so that only the service's own work
 *   (HTTP, database, queue, files) differs.
 *
 * The three take turns on the machine, `--rounds` times (default 4): in each
 * round each runs its share of the jobs alone while the others idle, in an
 * order that rotates from round to round. A shared machine's load drifts over
 * minutes; taking turns spreads that drift over all three instead of handing
 * it to whichever ran last. Speed is each one's images over the seconds of
 * its own turns; `ratio_speed` is printed for each round too.
 *
 * Prints speed, peak RSS, CPU per image by kind of thread (main, libvips'
 * workers, the rest: where the service's extra time goes), RSS growth over
 * the service's turns, heap and external at the end, temp files at the end,
 * rows after a sweep, file descriptors and handles at rest before and after,
 * and the ratios against both; draws the RSS of all three over time into
 * docs/soak-rss.svg. After each of the service's turns, outside its timed
 * span, the V8 heap it holds after a full collection is read through its
 * inspector (bench/lib/heapAfterGc.ts): what the heap keeps per job is the
 * growth of that figure from the end of its first turn to the end of its
 * last, over the jobs in between. Run with node's --experimental-websocket
 * (as `npm run bench:soak` does) for the inspector's client.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig, type Config } from '../src/config.js';
import { benchServiceEnv, spawnServer } from './lib/childService.js';
import { send } from './lib/httpLoad.js';
import { loadAverages, median } from './lib/figures.js';
import { driveJobs } from './lib/jobDriver.js';
import { heapUsedAfterFullGc } from './lib/heapAfterGc.js';
import { environment, nodeFlags, openFds, plus, sampleRss, threadCpu, threadCpuSince, type CpuTime, type RssSample, type ThreadCpu } from './lib/processStats.js';
import { plainBaseline, realSizeImage, startSharpLoop, type Baseline, type SharpLoopReport } from './lib/sharpLoop.js';
import { lineChart } from './lib/svgChart.js';

const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '4' }, 'skip-tuned': { type: 'boolean', default: false } },
});
const jobs = Number(values.jobs);
const rounds = Number(values.rounds);
// Two turns at least: the heap kept per job is measured from the end of the first to the end of the last.
if (!Number.isInteger(rounds) || rounds < 2) throw new Error('--rounds must be an integer of at least 2');
if (!Number.isInteger(jobs) || jobs < 8 * rounds) throw new Error('--jobs must be an integer of at least 8 per round');

const root = path.resolve(import.meta.dirname, '..');
const CHART = path.join(root, 'docs/soak-rss.svg');
const RSS_INTERVAL_MS = 250;
const STATS_INTERVAL_MS = 1_000;
/** Jobs (and sharp's conversions) run before measuring, in multiples of the jobs kept outstanding. */
const WARM_UP_ROUNDS = 2;
/** How long the service is left alone before its figures at rest are read: idle sockets close, timers settle. */
const REST_MS = 1_500;
const MIB = 1024 * 1024;
/** Variables a shell sets for itself (`cd` sets OLDPWD): not settings scripts/start.sh chose. */
const SHELL_VARIABLES = new Set(['PWD', 'OLDPWD', 'SHLVL', '_']);

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number): number => bytes / MIB;
/** The sample of highest RSS. */
const peak = (samples: readonly RssSample[]): RssSample => samples.reduce((high, sample) => (sample.rssBytes > high.rssBytes ? sample : high));

interface StatsSample {
  readonly ms: number;
  readonly heapTotalBytes: number;
  readonly heapUsedBytes: number;
  readonly externalBytes: number;
}

interface MemoryStats {
  memory_stats: { num_goroutines: number };
  node: { heap_total_bytes: number; heap_used_bytes: number; external_bytes: number; running_jobs: number; temp_files: { files: number } };
}

/** One turn on the machine: its conversions, their time and CPU, and when it ran (ms since the soak started). */
interface Turn {
  readonly images: number;
  readonly seconds: number;
  /** CPU time of the process's threads during the turn, read from /proc. */
  readonly cpu: ThreadCpu;
  readonly fromMs: number;
  readonly toMs: number;
}

/** The service or a sharp baseline: takes its turns, then ends. */
interface Contender {
  readonly name: 'ours' | 'plain sharp' | 'tuned sharp';
  readonly turns: Turn[];
  takeTurn(images: number): Promise<void>;
}

interface AtRest {
  readonly fds: number;
  readonly handles: number;
}

interface Ours extends Contender {
  readonly process: ChildProcess;
  /** Jobs by final status, over all turns. */
  readonly statuses: Record<string, number>;
  /** V8 heap in use after a full collection, read after each turn. */
  readonly heapAfterGc: number[];
  readonly atRestBefore: AtRest;
  /** What scripts/start.sh added to or changed in the environment it was given (allocator, thread pool). */
  readonly startShEnv: Record<string, string>;
  /** The node options scripts/start.sh started the service with. */
  readonly nodeFlags: string[];
  finish(): Promise<OursEnd>;
}

interface OursEnd {
  readonly rss: RssSample[];
  readonly stats: StatsSample[];
  readonly atRestAfter: AtRest;
  readonly end: { heapUsedBytes: number; externalBytes: number; tempFiles: number };
  readonly rowsAfterSweep: number;
  readonly exitCode: number | null;
}

/** Starts the service, warms it up and reads its figures at rest; `processes` gets its child, to be killed if the soak fails. */
async function startOurs(config: Config, env: NodeJS.ProcessEnv, image: Buffer, origin: number, processes: ChildProcess[]): Promise<Ours> {
  const child = await spawnServer('sh', ['scripts/start.sh'], env, root);
  processes.push(child.process);
  const pid = child.process.pid;
  if (pid === undefined) throw new Error('the service has no pid');
  const base = `http://127.0.0.1:${child.port}`;
  const given: NodeJS.ProcessEnv = { ...process.env, ...env };
  // The shell's own bookkeeping (`cd` sets OLDPWD) is no setting.
  const startShEnv = Object.fromEntries(Object.entries(environment(pid)).filter(([name, value]) => given[name] !== value && !SHELL_VARIABLES.has(name)));
  const stats = async (): Promise<MemoryStats> => JSON.parse((await send(false, 'GET', `${base}/debug/memory-stats`)).text) as MemoryStats;
  /** Waits until no attempt runs, leaves the service alone, then reads its descriptors and handles. */
  const atRest = async (): Promise<AtRest> => {
    while ((await stats()).node.running_jobs > 0) await delay(100);
    await delay(REST_MS);
    const fds = openFds(pid);
    return { fds, handles: (await stats()).memory_stats.num_goroutines };
  };
  const rssSampler = sampleRss(pid, RSS_INTERVAL_MS, origin);
  const inFlight = config.maxConcurrentJobs * 2;
  const drive = (total: number, agent: http.Agent) => driveJobs({ bases: [base], agent, bodies: [image], contentType: 'image/jpeg', total, inFlight });

  // Warm-up: JIT, libvips' threads, SQLite's pages. Its agent is destroyed so no client socket stays open at rest.
  const warmAgent = new http.Agent({ keepAlive: true });
  await drive(inFlight * WARM_UP_ROUNDS, warmAgent);
  warmAgent.destroy();
  const atRestBefore = await atRest();

  // One small request a second, in every turn: the heap and external lines of the chart.
  const statsSamples: StatsSample[] = [];
  const statsTimer = setInterval(() => {
    const ms = performance.now() - origin;
    stats().then(
      ({ node }) => statsSamples.push({ ms, heapTotalBytes: node.heap_total_bytes, heapUsedBytes: node.heap_used_bytes, externalBytes: node.external_bytes }),
      (error: unknown) => console.error('memory-stats failed:', error),
    );
  }, STATS_INTERVAL_MS);
  const agent = new http.Agent({ keepAlive: true });
  const turns: Turn[] = [];
  const statuses: Record<string, number> = {};
  const heapAfterGc: number[] = [];

  return {
    name: 'ours',
    process: child.process,
    turns,
    statuses,
    heapAfterGc,
    atRestBefore,
    startShEnv,
    nodeFlags: nodeFlags(pid),
    async takeTurn(images) {
      const fromMs = performance.now() - origin;
      const cpuBefore = threadCpu(pid);
      const run = await drive(images, agent);
      turns.push({ images, seconds: run.seconds, cpu: threadCpuSince(cpuBefore, threadCpu(pid)), fromMs, toMs: performance.now() - origin });
      for (const [status, n] of Object.entries(run.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
      heapAfterGc.push(await heapUsedAfterFullGc(pid));
    },
    async finish() {
      clearInterval(statsTimer);
      agent.destroy();
      const final = await stats();
      const end = { heapUsedBytes: final.node.heap_used_bytes, externalBytes: final.node.external_bytes, tempFiles: final.node.temp_files.files };
      await send(false, 'POST', `${base}/debug/memory/cleanup-images`);
      const { counts } = JSON.parse((await send(false, 'GET', `${base}/stats`)).text) as { counts: Record<string, number> };
      const rowsAfterSweep = Object.values(counts).reduce((sum, n) => sum + n, 0);
      const atRestAfter = await atRest();
      const rss = rssSampler.stop();
      const exitCode = await child.stop();
      return { rss, stats: statsSamples, atRestAfter, end, rowsAfterSweep, exitCode };
    },
  };
}

interface SharpContender extends Contender {
  finish(): Promise<SharpLoopReport & { readonly rss: RssSample[] }>;
}

/** Starts a sharp baseline and waits for its warm-up; its RSS is sampled as the service's is. */
async function startSharp(name: 'plain sharp' | 'tuned sharp', config: Config, baseline: Baseline, input: string, out: string, origin: number, processes: ChildProcess[]): Promise<SharpContender> {
  const loop = startSharpLoop({ root, baseline, config, input, out, warmUp: config.maxConcurrentJobs * 2 * WARM_UP_ROUNDS });
  processes.push(loop.process);
  const pid = loop.process.pid;
  if (pid === undefined) throw new Error(`${name} has no pid`);
  const rssSampler = sampleRss(pid, RSS_INTERVAL_MS, origin);
  await loop.ready;
  const turns: Turn[] = [];
  return {
    name,
    turns,
    async takeTurn(images) {
      const fromMs = performance.now() - origin;
      const cpuBefore = threadCpu(pid);
      const { seconds } = await loop.segment(images);
      turns.push({ images, seconds, cpu: threadCpuSince(cpuBefore, threadCpu(pid)), fromMs, toMs: performance.now() - origin });
    },
    async finish() {
      // The sampler stops whether or not the baseline ends well.
      const rss: RssSample[] = [];
      const report = await loop.finish().finally(() => rss.push(...rssSampler.stop()));
      return { ...report, rss };
    },
  };
}

/** Sharp with the service's settings, environment and node flags (those scripts/start.sh gave it). */
function tunedBaseline(ours: Ours): Baseline {
  return { settings: 'tuned', env: { ...process.env, ...ours.startShEnv }, nodeFlags: ours.nodeFlags };
}

const total = (turns: readonly Turn[], pick: (turn: Turn) => number): number => turns.reduce((sum, turn) => sum + pick(turn), 0);
/** Images per second over a contender's turns. */
const speed = (turns: readonly Turn[]): number => total(turns, (t) => t.images) / total(turns, (t) => t.seconds);

/**
 * Median RSS of the last quarter of the service's time under load over that
 * of its second quarter (the first is the warm-up's wake). Time under load is
 * its turns laid end to end: the idle spans between them are left out.
 */
function growth(rss: readonly RssSample[], turns: readonly Turn[]): { ratio: number; q2: number; q4: number } {
  const underLoad: { loadMs: number; rssBytes: number }[] = [];
  let loadMs = 0;
  for (const turn of turns) {
    for (const sample of rss) if (sample.ms >= turn.fromMs && sample.ms <= turn.toMs) underLoad.push({ loadMs: loadMs + sample.ms - turn.fromMs, rssBytes: sample.rssBytes });
    loadMs += turn.toMs - turn.fromMs;
  }
  const quarter = loadMs / 4;
  const within = (from: number, to: number) => underLoad.filter((s) => s.loadMs >= from && s.loadMs < to).map((s) => s.rssBytes);
  const q2 = median(within(quarter, 2 * quarter));
  const q4 = median(within(3 * quarter, loadMs + 1));
  return { ratio: q4 / q2, q2, q4 };
}

/** The jobs of each round: `jobs` split as evenly as whole numbers allow. */
function shares(): number[] {
  return Array.from({ length: rounds }, (_, round) => Math.floor(jobs / rounds) + (round < jobs % rounds ? 1 : 0));
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-soak-'));
  const processes: ChildProcess[] = [];
  try {
    const input = await realSizeImage(root, scratch);
    const image = fs.readFileSync(input);
    const meta = await sharp(image).metadata();
    const serviceEnv = benchServiceEnv(path.join(scratch, 'ours'));
    const config = loadConfig({ ...process.env, ...serviceEnv });

    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.type()} ${os.release()}`);
    console.log(`command: npm run bench:soak -- --jobs ${jobs} --rounds ${rounds}${values['skip-tuned'] ? ' --skip-tuned' : ''}`);
    console.log(`load average at start: ${loadAverages()}`);
    console.log(`image: ${path.relative(root, input)} (${meta.width}x${meta.height} ${meta.format}, ${image.length} bytes) -> webp quality ${config.webpQuality} effort ${config.webpEffort}`);
    console.log(`service: MAX_CONCURRENT_JOBS=${config.maxConcurrentJobs} CONVERT_CONCURRENCY=${config.convertConcurrency} MAX_COMPLETED_JOBS=${config.maxCompletedJobs}, ${config.maxConcurrentJobs * 2} jobs outstanding\n`);

    const origin = performance.now();
    const ours = await startOurs(config, serviceEnv, image, origin, processes);
    const plain = await startSharp('plain sharp', config, plainBaseline(), input, path.join(scratch, 'plain'), origin, processes);
    const tuned = values['skip-tuned'] ? null : await startSharp('tuned sharp', config, tunedBaseline(ours), input, path.join(scratch, 'tuned'), origin, processes);
    const contenders: Contender[] = [ours, plain, ...(tuned ? [tuned] : [])];

    const startSh = Object.entries(ours.startShEnv).map(([name, value]) => `${name}=${value}`).join(' ');
    console.log(`scripts/start.sh gave the service: environment ${startSh || '(nothing)'}; node flags ${ours.nodeFlags.join(' ') || '(none)'}`);
    console.log(`plain sharp: sharp's defaults, the machine's default environment (no MALLOC_ARENA_MAX, LD_PRELOAD, UV_THREADPOOL_SIZE, NODE_OPTIONS), no node flags`);
    if (tuned) console.log(`tuned sharp: the service's configureSharp(), with the environment and node flags scripts/start.sh gave the service`);
    console.log('');

    const roundRatios: number[] = [];
    for (const [round, images] of shares().entries()) {
      // The order rotates, so that no one always follows the same other.
      const order = contenders.map((_, k) => contenders[(round + k) % contenders.length] as Contender);
      const load = os.loadavg()[0] ?? 0;
      for (const contender of order) await contender.takeTurn(images);
      const speeds = order.map((contender) => `${contender.name} ${speed(contender.turns.slice(-1)).toFixed(2)}`).join(', ');
      const roundRatio = speed(ours.turns.slice(-1)) / speed(plain.turns.slice(-1));
      roundRatios.push(roundRatio);
      console.log(`round ${round + 1} (${images} each, 1-min load at its start ${load.toFixed(2)}): images/s ${speeds}; ratio_speed ${roundRatio.toFixed(2)}`);
    }
    console.log('');

    const oursEnd = await ours.finish();
    const plainEnd = await plain.finish();
    const tunedEnd = tuned ? await tuned.finish() : null;

    const oursSpeed = speed(ours.turns);
    const oursPeak = peak(oursEnd.rss);
    const rssGrowth = growth(oursEnd.rss, ours.turns);
    const statuses = Object.entries(ours.statuses).map(([status, n]) => `${status} ${n}`).join(', ');
    const seconds = (turns: readonly Turn[]): string => `${total(turns, (t) => t.seconds).toFixed(1)} s`;
    const line = (name: string, text: string) => console.log(`${name.padEnd(12)} ${text}`);
    line('ours:', `${jobs} jobs (${statuses}) in ${seconds(ours.turns)} = ${oursSpeed.toFixed(2)} images/s, peak RSS ${mib(oursPeak.rssBytes).toFixed(1)} MiB`);
    const sharpSettings = (report: SharpLoopReport): string => `${report.threadsPerImage} thread(s) per image, cache ${report.cacheMiB} MiB / ${report.cacheFiles} files`;
    const sharpLine = (contender: SharpContender, end: SharpLoopReport & { rss: RssSample[] }): void =>
      line(`${contender.name}:`, `${jobs} conversions in ${seconds(contender.turns)} = ${speed(contender.turns).toFixed(2)} images/s, peak RSS ${mib(peak(end.rss).rssBytes).toFixed(1)} MiB; ${sharpSettings(end)}`);
    sharpLine(plain, plainEnd);
    if (tuned && tunedEnd) sharpLine(tuned, tunedEnd);

    const oursHeapTotal = Math.max(...oursEnd.stats.map((s) => s.heapTotalBytes));
    const breakdown = (sample: RssSample, heapTotal: number): string =>
      `anonymous ${mib(sample.anonBytes).toFixed(1)} + file-backed ${mib(sample.fileBytes).toFixed(1)} MiB; V8 heap up to ${mib(heapTotal).toFixed(1)} MiB`;
    const sharpBreakdown = (name: string, end: (SharpLoopReport & { rss: RssSample[] }) | null): string => (end ? `; ${name} ${breakdown(peak(end.rss), end.maxHeapTotalBytes)}` : '');
    console.log(`at peak: ours ${breakdown(oursPeak, oursHeapTotal)}${sharpBreakdown('plain sharp', plainEnd)}${sharpBreakdown('tuned sharp', tunedEnd)}`);
    const msPerImage = (seconds: number): string => ((seconds / jobs) * 1_000).toFixed(1);
    const summed = (turns: readonly Turn[], pick: (cpu: ThreadCpu) => CpuTime): CpuTime => turns.map((t) => pick(t.cpu)).reduce(plus, { user: 0, system: 0 });
    const allThreads = ({ main, libvips, rest }: ThreadCpu): CpuTime => plus(plus(main, libvips), rest);
    const userPlusSystem = (cpu: CpuTime): string => `${msPerImage(cpu.user)} + ${msPerImage(cpu.system)}`;
    const cpuLine = (contender: Contender): string => {
      const all = summed(contender.turns, allThreads);
      const threads = (['main', 'libvips', 'rest'] as const).map((kind) => `${kind} ${userPlusSystem(summed(contender.turns, (cpu) => cpu[kind]))}`).join(', ');
      return `${contender.name} ${msPerImage(all.user + all.system)} (${threads})`;
    };
    console.log(`cpu, ms per image (user + system by thread: main, libvips' workers, the rest): ${contenders.map(cpuLine).join('; ')}`);
    console.log(`rss_growth=${rssGrowth.ratio.toFixed(3)} (median RSS of the last quarter of its time under load ${mib(rssGrowth.q4).toFixed(1)} MiB over its second quarter ${mib(rssGrowth.q2).toFixed(1)} MiB)`);
    console.log(`end: heap_used_mb=${mib(oursEnd.end.heapUsedBytes).toFixed(1)} external_mb=${mib(oursEnd.end.externalBytes).toFixed(1)} temp_files=${oursEnd.end.tempFiles} rows_after_sweep=${oursEnd.rowsAfterSweep} (MAX_COMPLETED_JOBS ${config.maxCompletedJobs})`);
    const heapFirst = ours.heapAfterGc[0] ?? Number.NaN;
    const heapLast = ours.heapAfterGc.at(-1) ?? Number.NaN;
    const heapPerJob = (heapLast - heapFirst) / total(ours.turns.slice(1), (t) => t.images);
    console.log(`heap_after_full_gc_mb=${ours.heapAfterGc.map((bytes) => mib(bytes).toFixed(2)).join(',')} (after each of its turns)`);
    console.log(`heap_growth_per_job_bytes=${heapPerJob.toFixed(1)} (after a full collection, from the end of its first turn to the end of its last)`);
    console.log(`at rest: fds_before=${ours.atRestBefore.fds} fds_after=${oursEnd.atRestAfter.fds} handles_before=${ours.atRestBefore.handles} handles_after=${oursEnd.atRestAfter.handles}; service exit code ${oursEnd.exitCode}`);

    const ratios = (contender: SharpContender, end: { rss: RssSample[] }) => ({ speed: oursSpeed / speed(contender.turns), peakRss: oursPeak.rssBytes / peak(end.rss).rssBytes });
    const vsPlain = ratios(plain, plainEnd);
    console.log(`ratio_speed=${vsPlain.speed.toFixed(3)}`);
    const speedMedian = median(roundRatios);
    console.log(`ratio_speed_median_of_rounds=${speedMedian.toFixed(3)}`);
    console.log(`ratio_peak_rss=${vsPlain.peakRss.toFixed(3)}`);
    if (tuned && tunedEnd) {
      const vsTuned = ratios(tuned, tunedEnd);
      console.log(`ratio_speed_vs_tuned_sharp=${vsTuned.speed.toFixed(3)}`);
      console.log(`ratio_peak_rss_vs_tuned_sharp=${vsTuned.peakRss.toFixed(3)}`);
    }
    console.log(`load average at end: ${loadAverages()}`);
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    console.log(
      `targets: growth <= 1.03 ${verdict(rssGrowth.ratio <= 1.03)}, heap growth < 1024 bytes per job ${verdict(heapPerJob < 1024)}, against plain sharp: ratio_peak_rss <= 1.0 ${verdict(vsPlain.peakRss <= 1.0)}, ratio_speed >= 0.85 (median of rounds) ${verdict(speedMedian >= 0.85)}`,
    );

    const inSeconds = (ms: number): number => ms / 1_000;
    const colors = { ours: '#1f6feb', 'plain sharp': '#e8710a', 'tuned sharp': '#bf3989' } as const;
    const rssLine = (name: string, color: string, rss: readonly RssSample[]) => ({ name, color, points: rss.map((s): [number, number] => [inSeconds(s.ms), mib(s.rssBytes)]) });
    const svg = lineChart(
      `RSS over time: ${jobs} jobs of ${meta.width}x${meta.height} JPEG -> WebP, ${os.availableParallelism()} cores, ${rounds} rounds of turns`,
      [
        rssLine('image-jobs RSS', colors.ours, oursEnd.rss),
        rssLine('plain sharp RSS', colors['plain sharp'], plainEnd.rss),
        ...(tunedEnd ? [rssLine('tuned sharp RSS', colors['tuned sharp'], tunedEnd.rss)] : []),
        { name: 'image-jobs V8 heap used', color: '#2da44e', width: 1.5, points: oursEnd.stats.map((s) => [inSeconds(s.ms), mib(s.heapUsedBytes)]) },
        { name: 'image-jobs external', color: '#8250df', width: 1.5, points: oursEnd.stats.map((s) => [inSeconds(s.ms), mib(s.externalBytes)]) },
      ],
      {
        xLabel: "seconds since the soak started; shaded: whose turn it is, in its RSS line's colour",
        bands: contenders.flatMap((contender) => contender.turns.map((turn) => ({ fromS: inSeconds(turn.fromMs), toS: inSeconds(turn.toMs), color: colors[contender.name] }))),
      },
    );
    fs.mkdirSync(path.dirname(CHART), { recursive: true });
    fs.writeFileSync(CHART, svg);
    console.log(`chart: ${path.relative(root, CHART)}`);
  } finally {
    for (const child of processes) child.kill('SIGKILL');
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
