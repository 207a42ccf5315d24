/**
 * The durable floor of `bench/cpuPerImage.ts`: the least a server must do
 * for each image under the service's durability rules, and nothing more. It
 * streams the body of `POST /` to a temp file, fsyncs the file and its
 * folder, reads the header (as a submission does, to refuse pixel bombs),
 * converts with the service's own converter (src/image/convert.ts, the same
 * sharp settings and `CONVERT_CONCURRENCY` slots), fsyncs the output, renames
 * it into place, fsyncs the folder, and answers 200 once the image is done.
 *
 * No database, queue, polling, logs, metrics or validation: what the service
 * costs above this is what those cost. Announces its port like the service
 * does. Files are removed as soon as the answer is written.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { createConverter } from '../src/image/convert.js';
import { readHeader } from '../src/image/header.js';
import { configureSharp } from '../src/image/sharpSettings.js';
import { Semaphore } from '../src/queue/semaphore.js';
import { close, fsync, open, removeFile, writeAll } from '../src/storage/fsCalls.js';
import { fsyncPath } from '../src/storage/fsync.js';

const config = loadConfig(process.env);
const dir = path.join(config.dataDir, 'floor');
fs.mkdirSync(dir, { recursive: true });
configureSharp();
const converter = createConverter({
  webpQuality: config.webpQuality,
  webpEffort: config.webpEffort,
  maxInputPixels: config.maxInputPixels,
  conversions: new Semaphore(config.convertConcurrency),
});

async function receive(req: http.IncomingMessage, file: string): Promise<void> {
  const fd = await open(file, 'wx');
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) await writeAll(fd, chunk);
    await fsync(fd);
  } finally {
    await close(fd);
  }
  await fsyncPath(dir);
}

async function convert(id: number, req: http.IncomingMessage): Promise<number> {
  const input = path.join(dir, `${id}.in`);
  const temp = path.join(dir, `${id}.webp.tmp`);
  const output = path.join(dir, `${id}.webp`);
  try {
    await receive(req, input);
    const header = await readHeader(input);
    const converted = await converter.convert({
      input,
      header,
      output: temp,
      index: 0,
      options: { format: 'webp' },
      // Never aborted: the floor has no cancel and no shutdown of its own.
      signal: new AbortController().signal,
      deadline: Date.now() + config.jobTimeoutMs,
    });
    await fsyncPath(temp);
    await fs.promises.rename(temp, output);
    await fsyncPath(dir);
    return converted.bytes;
  } finally {
    await Promise.all([input, temp, output].map(removeFile));
  }
}

let lastId = 0;
const server = http.createServer((req, res) => {
  lastId += 1;
  convert(lastId, req).then(
    (bytes) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes })),
    (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error)),
  );
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the floor has no TCP address');
  console.log(JSON.stringify({ msg: 'listening', port: address.port }));
});
process.once('SIGTERM', () => server.close());
