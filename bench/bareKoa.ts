/**
 * The baseline of `bench/submit.ts`: a bare Koa route that only streams the
 * body to a file, fsyncs it and its folder, and answers 202. No validation,
 * no sniffing, no database. Announces its port like the service does.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Koa from 'koa';

const dir = process.env.BARE_DIR ?? fs.mkdtempSync('/tmp/bare-koa-');
fs.mkdirSync(dir, { recursive: true });
let seq = 0;

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.method !== 'POST' || ctx.path !== '/jobs') {
    ctx.status = 404;
    return;
  }
  seq += 1;
  const file = path.join(dir, String(seq));
  // `flush`: the stream fsyncs the file before closing it, as the service's temp store does.
  await pipeline(ctx.req, fs.createWriteStream(file, { flags: 'wx', flush: true }));
  const folder = await fsp.open(dir, 'r');
  await folder.sync();
  await folder.close();
  ctx.status = 202;
  ctx.body = { id: seq };
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(JSON.stringify({ msg: 'listening', port: typeof address === 'object' && address ? address.port : 0 }));
});
process.on('SIGTERM', () => {
  server.close(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
  server.closeAllConnections();
});
