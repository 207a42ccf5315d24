import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUpServiceProcesses, newDataDir, startServiceProcess, tempFiles, type ServiceProcess } from './support/childService.js';
import { waitFor } from './support/wait.js';

afterEach(cleanUpServiceProcesses);

const MB = 1024 * 1024;
const IMAGE_BYTES = 40 * MB;
const BOUNDARY = 'upload-memory-boundary';

/**
 * Run with node -e: POSTs `total` bytes of non-image data to a URL as fast as
 * the socket takes them, raw or as one multipart file; holds back the last
 * 64 KiB, says "held" and sends them on a line on stdin; prints the status.
 */
const UPLOADER = `
const http = require('node:http');
const [url, form, totalText, boundary] = process.argv.slice(1);
const total = Number(totalText);
const chunk = Buffer.alloc(64 * 1024, 0x5a);
const head = Buffer.from('--' + boundary + '\\r\\ncontent-disposition: form-data; name="images"; filename="big.jpg"\\r\\ncontent-type: image/jpeg\\r\\n\\r\\n');
const tail = Buffer.from('\\r\\n--' + boundary + '--\\r\\n');
const multipart = form === 'multipart';
const type = multipart ? 'multipart/form-data; boundary=' + boundary : 'application/octet-stream';
const length = total + (multipart ? head.length + tail.length : 0);
const req = http.request(url, { method: 'POST', headers: { 'content-type': type, 'content-length': String(length) } });
req.on('response', (res) => { res.resume(); console.log(res.statusCode); });
const write = (bytes) => (req.write(bytes) ? Promise.resolve() : new Promise((resolve) => req.once('drain', resolve)));
(async () => {
  if (multipart) await write(head);
  for (let sent = 0; sent < total - chunk.length; sent += chunk.length) await write(chunk);
  console.log('held');
  process.stdin.once('data', () => req.end(multipart ? Buffer.concat([chunk, tail]) : chunk));
})();
`;

/**
 * The service's resident anonymous memory in bytes, from /proc (Linux): where
 * upload bytes held in memory would be. File-backed pages (code, mapped
 * libraries) are left out: the system may drop and fault them back in at any
 * time, which says nothing about the upload.
 */
function rss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/RssAnon:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

/** Size of the first image's input file in the temp store, 0 before it exists. */
function inputSize(service: ServiceProcess): number {
  const input = tempFiles(service.dataDir).find((entry) => entry.endsWith('.0'));
  return input === undefined ? 0 : fs.statSync(path.join(service.dataDir, 'tmp', input)).size;
}

/**
 * Uploads `total` bytes and returns the service's largest anonymous RSS above `idle`:
 * sampled all along, and once more with everything but the last 64 KiB
 * written to disk, when the chunks already written are all garbage.
 */
async function peakRiseDuringUpload(service: ServiceProcess, form: 'raw' | 'multipart', total: number, idle: number): Promise<{ rise: number; status: string }> {
  const client = spawn(process.execPath, ['-e', UPLOADER, `${service.url}/jobs`, form, String(total), BOUNDARY], { stdio: ['pipe', 'pipe', 'inherit'] });
  const said: string[] = [];
  readline.createInterface({ input: client.stdout }).on('line', (line) => said.push(line));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rss(service.pid))), 10);
  try {
    await waitFor(() => said.includes('held'), 30_000);
    await waitFor(() => inputSize(service) >= total - 64 * 1024 - 1024, 30_000);
    peak = Math.max(peak, rss(service.pid));
    client.stdin.write('go\n');
    const status = await waitFor(() => said.find((line) => /^\d{3}$/.test(line)), 30_000);
    return { rise: peak - idle, status };
  } finally {
    clearInterval(sampler);
  }
}

describe('memory while uploading', () => {
  // Below this, the upload is not in memory: 40 MB held would show as 40 MB.
  const FAR_BELOW = 12 * MB;

  it.each(['raw', 'multipart'] as const)('keeps RSS far below a 40 MB %s upload above idle: chunks go as soon as they are on disk', async (form) => {
    const service = await startServiceProcess(newDataDir(), { MAX_UPLOAD_BYTES: String(100 * MB), LOG_LEVEL: 'info' });
    // A first, smaller upload warms up the code paths and the allocator, as any running service is.
    expect((await peakRiseDuringUpload(service, form, 8 * MB, 0)).status).toBe('415');
    await waitFor(() => tempFiles(service.dataDir).length === 0);
    const idle = rss(service.pid);
    const { rise, status } = await peakRiseDuringUpload(service, form, IMAGE_BYTES, idle);
    // The bytes are no image: refused once streamed, which is what this measures.
    expect(status).toBe('415');
    expect(rise).toBeLessThan(FAR_BELOW);
    await waitFor(() => tempFiles(service.dataDir).length === 0);
  });
});
