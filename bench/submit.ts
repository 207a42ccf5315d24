/**
 * Submission throughput: `POST /jobs` with a raw ~75 KB JPEG body against a
 * bare Koa route that only streams the body to a file, fsyncs and answers 202.
 *
 * Both run as their own processes (ours compiled, started by scripts/start.sh
 * the way `npm start` does) and are loaded by this process at the same
 * concurrency over keep-alive connections. Rounds alternate ours and bare so
 * a noisy machine hits both alike; medians are printed.
 *
 * Our submissions carry `delayMs` far in the future so no conversion runs
 * during the measurement: this measures the submission path (streaming,
 * fsync of the file and the temp folder, format sniffing, header read,
 * validation, the insert and the WAL's fsync, the log lines).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { spawnServer, type Child } from './lib/childService.js';
import { postLoad, type LoadResult } from './lib/httpLoad.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '1500' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
  },
});
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
const root = path.resolve(import.meta.dirname, '..');

const median = (numbers: number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)] ?? 0;

/**
 * One side's round: start, warm up, measure, stop; then its files are
 * removed and the disk flushed (`sync`) before anything else runs, so no
 * round pays for the one before it. (Without this, the first round after the
 * bare route's exit, which removes its files, ran 28 % slower: the same build
 * measured twice in a row gave 990 and 1,269 req/s.)
 */
async function measure(start: () => Promise<Child>, url: (port: number) => string, body: Buffer, dataDir: string): Promise<LoadResult> {
  const child = await start();
  try {
    const load = { url: url(child.port), body, headers: { 'content-type': 'image/jpeg' }, concurrency };
    await postLoad({ ...load, requests: Math.min(200, requests) }); // warm-up: JIT, page cache
    return await postLoad({ ...load, requests });
  } finally {
    await child.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    execFileSync('sync');
  }
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  const body = await sharp({ create: { width: 420, height: 320, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .jpeg({ quality: 85 })
    .toBuffer();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-submit-'));

  const oursDir = (round: number) => path.join(scratch, `ours-${round}`);
  const bareDir = (round: number) => path.join(scratch, `bare-${round}`);
  const ours = (round: number) => () =>
    spawnServer('sh', ['scripts/start.sh'], {
      DATA_DIR: oursDir(round),
      PORT: '0',
      MAX_QUEUED_JOBS: String(10 * (requests + 200)),
      MIN_FREE_DISK_BYTES: '0',
    }, root);
  const bare = (round: number) => () =>
    spawnServer(process.execPath, ['--import', 'tsx', 'bench/bareKoa.ts'], { BARE_DIR: bareDir(round) }, root);

  const results: { ours: LoadResult[]; bare: LoadResult[] } = { ours: [], bare: [] };
  for (let round = 0; round < rounds; round++) {
    results.ours.push(await measure(ours(round), (port) => `http://127.0.0.1:${port}/jobs?delayMs=86400000`, body, oursDir(round)));
    results.bare.push(await measure(bare(round), (port) => `http://127.0.0.1:${port}/jobs`, body, bareDir(round)));
    const [o, b] = [results.ours.at(-1), results.bare.at(-1)];
    console.log(`round ${round + 1}: ours ${o?.perSec.toFixed(0)}/s (statuses ${JSON.stringify(o?.statuses)}), bare ${b?.perSec.toFixed(0)}/s`);
  }
  fs.rmSync(scratch, { recursive: true, force: true });

  const summary = (name: string, list: LoadResult[]) => ({
    name,
    perSec: median(list.map((r) => r.perSec)),
    p50: median(list.map((r) => r.p50Ms)),
    p99: median(list.map((r) => r.p99Ms)),
  });
  const o = summary('image-jobs POST /jobs', results.ours);
  const b = summary('bare Koa stream+fsync', results.bare);
  console.log(`\nmachine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.availableParallelism()} cores, node ${process.version}`);
  console.log(`command: npm run bench:submit -- --requests ${requests} --concurrency ${concurrency} --rounds ${rounds}`);
  console.log(`body: ${body.length} byte JPEG, concurrency ${concurrency}, ${requests} requests per round, median of ${rounds} rounds\n`);
  for (const side of [o, b]) {
    console.log(`${side.name.padEnd(26)} ${side.perSec.toFixed(0).padStart(6)} req/s   p50 ${side.p50.toFixed(1).padStart(6)} ms   p99 ${side.p99.toFixed(1).padStart(6)} ms`);
  }
  console.log(`ratio_vs_bare_koa=${(o.perSec / b.perSec).toFixed(2)}`);
}

await main();
