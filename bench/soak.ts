/**
 * Memory soak: pushes `--jobs` real-size image jobs (default 2,000) through
 * the HTTP API of the built service, started by scripts/start.sh the way
 * `npm start` does, keeping 2 x MAX_CONCURRENT_JOBS jobs outstanding. Its RSS
 * is read from outside (/proc/<pid>/status) every 250 ms, its own figures
 * (`GET /debug/memory-stats`) every second. Then sharp alone does the same
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
 * Prints speed, peak RSS, RSS growth over the run, heap and external at the
 * end, temp files at the end, rows after a sweep, file descriptors and
 * handles at rest before and after, and the ratios against both; draws the
 * RSS of all three over time into docs/soak-rss.svg.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig, type Config } from '../src/config.js';
import { spawnServer } from './lib/childService.js';
import { send } from './lib/httpLoad.js';
import { loadAverages, median } from './lib/figures.js';
import { driveJobs, type DriveResult } from './lib/jobDriver.js';
import { cpuSeconds, environment, nodeFlags, openFds, sampleRss, type RssSample } from './lib/processStats.js';
import { plainBaseline, realSizeImage, startSharpLoop, type Baseline, type SharpLoopReport } from './lib/sharpLoop.js';
import { lineChart } from './lib/svgChart.js';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '2000' }, 'skip-tuned': { type: 'boolean', default: false } } });
const jobs = Number(values.jobs);
if (!Number.isInteger(jobs) || jobs < 8) throw new Error('--jobs must be an integer of at least 8');

const root = path.resolve(import.meta.dirname, '..');
const CHART = path.join(root, 'docs/soak-rss.svg');
const RSS_INTERVAL_MS = 250;
const STATS_INTERVAL_MS = 1_000;
/** Jobs (and plain sharp conversions) run before measuring, in multiples of the jobs kept outstanding. */
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

interface OursResult {
  readonly run: DriveResult;
  /** CPU time of the service's threads during the measured run. */
  readonly cpuSeconds: number;
  /** Of which the main thread's: JavaScript, the event loop, SQLite. */
  readonly mainThreadCpuSeconds: number;
  readonly rss: RssSample[];
  readonly stats: StatsSample[];
  /** The measured run, in ms since the process was spawned. */
  readonly window: { readonly fromMs: number; readonly toMs: number };
  readonly atRestBefore: { fds: number; handles: number };
  readonly atRestAfter: { fds: number; handles: number };
  readonly end: { heapUsedBytes: number; externalBytes: number; tempFiles: number };
  readonly rowsAfterSweep: number;
  readonly exitCode: number | null;
  /** What scripts/start.sh added to or changed in the environment it was given (allocator, thread pool). */
  readonly startShEnv: Record<string, string>;
  /** The node options scripts/start.sh started the service with. */
  readonly nodeFlags: string[];
}

async function runOurs(config: Config, env: NodeJS.ProcessEnv, image: Buffer): Promise<OursResult> {
  const spawnedAt = performance.now();
  const child = await spawnServer('sh', ['scripts/start.sh'], env, root);
  try {
    const pid = child.process.pid;
    if (pid === undefined) throw new Error('the service has no pid');
    const base = `http://127.0.0.1:${child.port}`;
    const given: NodeJS.ProcessEnv = { ...process.env, ...env };
    // The shell's own bookkeeping (`cd` sets OLDPWD) is no setting.
    const startShEnv = Object.fromEntries(Object.entries(environment(pid)).filter(([name, value]) => given[name] !== value && !SHELL_VARIABLES.has(name)));
    const flags = nodeFlags(pid);
    const stats = async (): Promise<MemoryStats> => JSON.parse((await send(false, 'GET', `${base}/debug/memory-stats`)).text) as MemoryStats;
    /** Waits until no attempt runs, leaves the service alone, then reads its descriptors and handles. */
    const atRest = async (): Promise<{ fds: number; handles: number }> => {
      while ((await stats()).node.running_jobs > 0) await delay(100);
      await delay(REST_MS);
      const fds = openFds(pid);
      return { fds, handles: (await stats()).memory_stats.num_goroutines };
    };
    const rssSampler = sampleRss(pid, RSS_INTERVAL_MS, spawnedAt);
    const inFlight = config.maxConcurrentJobs * 2;
    const drive = (total: number, agent: http.Agent) => driveJobs({ base, agent, body: image, contentType: 'image/jpeg', total, inFlight });

    // Warm-up: JIT, libvips' threads, SQLite's pages. Its agent is destroyed so no client socket stays open at rest.
    const warmAgent = new http.Agent({ keepAlive: true });
    await drive(inFlight * WARM_UP_ROUNDS, warmAgent);
    warmAgent.destroy();
    const atRestBefore = await atRest();

    const statsSamples: StatsSample[] = [];
    const statsTimer = setInterval(() => {
      const ms = performance.now() - spawnedAt;
      stats().then(
        ({ node }) => statsSamples.push({ ms, heapTotalBytes: node.heap_total_bytes, heapUsedBytes: node.heap_used_bytes, externalBytes: node.external_bytes }),
        (error: unknown) => console.error('memory-stats failed:', error),
      );
    }, STATS_INTERVAL_MS);
    const agent = new http.Agent({ keepAlive: true });
    const fromMs = performance.now() - spawnedAt;
    const cpuBefore = cpuSeconds(pid);
    const mainBefore = cpuSeconds(pid, 'main thread');
    const run = await drive(jobs, agent);
    const toMs = performance.now() - spawnedAt;
    const cpu = cpuSeconds(pid) - cpuBefore;
    const mainThreadCpu = cpuSeconds(pid, 'main thread') - mainBefore;
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
    return { run, cpuSeconds: cpu, mainThreadCpuSeconds: mainThreadCpu, rss, stats: statsSamples, window: { fromMs, toMs }, atRestBefore, atRestAfter, end, rowsAfterSweep, exitCode, startShEnv, nodeFlags: flags };
  } finally {
    child.process.kill('SIGKILL');
  }
}

interface PlainResult extends SharpLoopReport {
  readonly rss: RssSample[];
}

/** Sharp with the service's settings, environment and node flags (those scripts/start.sh gave it). */
function tunedBaseline(ours: OursResult): Baseline {
  return { settings: 'tuned', env: { ...process.env, ...ours.startShEnv }, nodeFlags: ours.nodeFlags };
}

/** Runs a sharp baseline over the soak's count of conversions, its RSS sampled as the service's was. */
async function runPlainSharp(config: Config, baseline: Baseline, input: string, out: string): Promise<PlainResult> {
  const spawnedAt = performance.now();
  const loop = startSharpLoop({ root, baseline, config, input, out, count: jobs, warmUp: config.maxConcurrentJobs * 2 * WARM_UP_ROUNDS });
  const pid = loop.process.pid;
  if (pid === undefined) throw new Error(`${baseline.settings} sharp has no pid`);
  const rss: RssSample[] = [];
  const rssSampler = sampleRss(pid, RSS_INTERVAL_MS, spawnedAt);
  // The sampler stops whether or not the baseline succeeds.
  const report = await loop.done.finally(() => rss.push(...rssSampler.stop()));
  return { ...report, rss };
}

/** Median RSS of the last quarter of the run over that of its second quarter (the first is warm-up). */
function growth(rss: readonly RssSample[], fromMs: number, toMs: number): { ratio: number; q2: number; q4: number } {
  const quarter = (toMs - fromMs) / 4;
  const within = (from: number, to: number) => rss.filter((s) => s.ms >= from && s.ms < to).map((s) => s.rssBytes);
  const q2 = median(within(fromMs + quarter, fromMs + 2 * quarter));
  const q4 = median(within(fromMs + 3 * quarter, toMs + 1));
  return { ratio: q4 / q2, q2, q4 };
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-soak-'));
  try {
    const input = await realSizeImage(root, scratch);
    const image = fs.readFileSync(input);
    const meta = await sharp(image).metadata();
    // The bench reads the port from the service's `listening` log line, written at level info.
    const serviceEnv = { DATA_DIR: path.join(scratch, 'ours'), PORT: '0', MIN_FREE_DISK_BYTES: '0', LOG_LEVEL: 'info' };
    const env = { ...process.env, ...serviceEnv };
    const config = loadConfig(env);

    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.type()} ${os.release()}`);
    console.log(`command: npm run bench:soak -- --jobs ${jobs}${values['skip-tuned'] ? ' --skip-tuned' : ''}`);
    console.log(`load average at start: ${loadAverages()}`);
    console.log(`image: ${path.relative(root, input)} (${meta.width}x${meta.height} ${meta.format}, ${image.length} bytes) -> webp quality ${config.webpQuality} effort ${config.webpEffort}`);
    console.log(`service: MAX_CONCURRENT_JOBS=${config.maxConcurrentJobs} CONVERT_CONCURRENCY=${config.convertConcurrency} MAX_COMPLETED_JOBS=${config.maxCompletedJobs}, ${config.maxConcurrentJobs * 2} jobs outstanding\n`);

    const oursLoad = os.loadavg()[0] ?? 0;
    const ours = await runOurs(config, serviceEnv, image);
    const plainLoad = os.loadavg()[0] ?? 0;
    const plain = await runPlainSharp(config, plainBaseline(), input, path.join(scratch, 'plain'));
    const tunedLoad = os.loadavg()[0] ?? 0;
    const tuned = values['skip-tuned'] ? null : await runPlainSharp(config, tunedBaseline(ours), input, path.join(scratch, 'tuned'));

    const startSh = Object.entries(ours.startShEnv).map(([name, value]) => `${name}=${value}`).join(' ');
    console.log(`scripts/start.sh gave the service: environment ${startSh || '(nothing)'}; node flags ${ours.nodeFlags.join(' ') || '(none)'}`);
    const sharpSettings = (result: PlainResult): string => `${result.threadsPerImage} thread(s) per image, cache ${result.cacheMiB} MiB / ${result.cacheFiles} files`;
    console.log(`plain sharp: sharp's defaults (${sharpSettings(plain)}), the machine's default environment (no MALLOC_ARENA_MAX, LD_PRELOAD, UV_THREADPOOL_SIZE, NODE_OPTIONS), no node flags`);
    if (tuned) console.log(`tuned sharp: the service's configureSharp() (${sharpSettings(tuned)}), with the environment and node flags scripts/start.sh gave the service`);
    console.log('');

    const oursSpeed = jobs / ours.run.seconds;
    const oursPeak = peak(ours.rss);
    const rssGrowth = growth(ours.rss, ours.window.fromMs, ours.window.toMs);
    const statuses = Object.entries(ours.run.statuses).map(([status, n]) => `${status} ${n}`).join(', ');
    const line = (name: string, text: string) => console.log(`${name.padEnd(12)} ${text}`);
    const load = (oneMinute: number): string => `(1-min load at its start ${oneMinute.toFixed(2)})`;
    line('ours:', `${jobs} jobs (${statuses}) in ${ours.run.seconds.toFixed(1)} s = ${oursSpeed.toFixed(2)} images/s, peak RSS ${mib(oursPeak.rssBytes).toFixed(1)} MiB ${load(oursLoad)}`);
    const sharpLine = (name: string, result: PlainResult, oneMinute: number): void =>
      line(name, `${jobs} conversions in ${result.seconds.toFixed(1)} s = ${(jobs / result.seconds).toFixed(2)} images/s, peak RSS ${mib(peak(result.rss).rssBytes).toFixed(1)} MiB ${load(oneMinute)}`);
    sharpLine('plain sharp:', plain, plainLoad);
    if (tuned) sharpLine('tuned sharp:', tuned, tunedLoad);

    const oursHeapTotal = Math.max(...ours.stats.map((s) => s.heapTotalBytes));
    const breakdown = (sample: RssSample, heapTotal: number): string =>
      `anonymous ${mib(sample.anonBytes).toFixed(1)} + file-backed ${mib(sample.fileBytes).toFixed(1)} MiB; V8 heap up to ${mib(heapTotal).toFixed(1)} MiB`;
    const sharpBreakdown = (name: string, result: PlainResult | null): string => (result ? `; ${name} ${breakdown(peak(result.rss), result.maxHeapTotalBytes)}` : '');
    console.log(`at peak: ours ${breakdown(oursPeak, oursHeapTotal)}${sharpBreakdown('plain sharp', plain)}${sharpBreakdown('tuned sharp', tuned)}`);
    const cpuPerImage = (cpu: number): string => `${((cpu / jobs) * 1_000).toFixed(1)} ms per image`;
    const tunedCpu = tuned ? `, tuned sharp ${cpuPerImage(tuned.cpuSeconds)}` : '';
    console.log(`cpu: ours ${cpuPerImage(ours.cpuSeconds)} (main thread ${cpuPerImage(ours.mainThreadCpuSeconds)}), plain sharp ${cpuPerImage(plain.cpuSeconds)}${tunedCpu} (all threads, user + system)`);
    console.log(`rss_growth=${rssGrowth.ratio.toFixed(3)} (median RSS of the run's last quarter ${mib(rssGrowth.q4).toFixed(1)} MiB over its second quarter ${mib(rssGrowth.q2).toFixed(1)} MiB)`);
    console.log(`end: heap_used_mb=${mib(ours.end.heapUsedBytes).toFixed(1)} external_mb=${mib(ours.end.externalBytes).toFixed(1)} temp_files=${ours.end.tempFiles} rows_after_sweep=${ours.rowsAfterSweep} (MAX_COMPLETED_JOBS ${config.maxCompletedJobs})`);
    console.log(`at rest: fds_before=${ours.atRestBefore.fds} fds_after=${ours.atRestAfter.fds} handles_before=${ours.atRestBefore.handles} handles_after=${ours.atRestAfter.handles}; service exit code ${ours.exitCode}`);

    const ratios = (result: PlainResult) => ({ speed: oursSpeed / (jobs / result.seconds), peakRss: oursPeak.rssBytes / peak(result.rss).rssBytes });
    const vsPlain = ratios(plain);
    console.log(`ratio_speed=${vsPlain.speed.toFixed(2)}`);
    console.log(`ratio_peak_rss=${vsPlain.peakRss.toFixed(2)}`);
    if (tuned) {
      const vsTuned = ratios(tuned);
      console.log(`ratio_speed_vs_tuned_sharp=${vsTuned.speed.toFixed(2)}`);
      console.log(`ratio_peak_rss_vs_tuned_sharp=${vsTuned.peakRss.toFixed(2)}`);
    }
    console.log(`load average at end: ${loadAverages()}`);
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    console.log(
      `targets (against plain sharp): growth <= 1.05 ${verdict(rssGrowth.ratio <= 1.05)}, ratio_peak_rss <= 1.2 ${verdict(vsPlain.peakRss <= 1.2)} (goal <= 1.0 ${verdict(vsPlain.peakRss <= 1.0)}), ratio_speed >= 0.95 ${verdict(vsPlain.speed >= 0.95)}`,
    );

    const seconds = (ms: number): number => ms / 1_000;
    const rssLine = (name: string, color: string, rss: readonly RssSample[]) => ({ name, color, points: rss.map((s): [number, number] => [seconds(s.ms), mib(s.rssBytes)]) });
    const svg = lineChart(
      `RSS over time: ${jobs} jobs of ${meta.width}x${meta.height} JPEG -> WebP, ${os.availableParallelism()} cores`,
      [
        rssLine('image-jobs RSS', '#1f6feb', ours.rss),
        rssLine('plain sharp RSS', '#e8710a', plain.rss),
        ...(tuned ? [rssLine('tuned sharp RSS', '#bf3989', tuned.rss)] : []),
        { name: 'image-jobs V8 heap used', color: '#2da44e', width: 1.5, points: ours.stats.map((s) => [seconds(s.ms), mib(s.heapUsedBytes)]) },
        { name: 'image-jobs external', color: '#8250df', width: 1.5, points: ours.stats.map((s) => [seconds(s.ms), mib(s.externalBytes)]) },
      ],
      { label: 'image-jobs measured run', fromS: seconds(ours.window.fromMs), toS: seconds(ours.window.toMs) },
    );
    fs.mkdirSync(path.dirname(CHART), { recursive: true });
    fs.writeFileSync(CHART, svg);
    console.log(`chart: ${path.relative(root, CHART)}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
