import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { call, expectProblem, submitRaw } from './support/http.js';
import { noiseJpeg } from './support/images.js';
import { postgresAvailable, testPostgres } from './support/postgres.js';
import { startService } from './support/service.js';
import { waitFor } from './support/wait.js';

/**
 * A TCP relay between the service and PostgreSQL that a test can cut and
 * restore on the same port: the database server gone from the network, as
 * a restart or a network fault would leave it, and back.
 */
async function cuttableRelay(target: URL): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const listen = async (): Promise<void> => {
    const relay = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 5432), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
    port = (relay.address() as net.AddressInfo).port;
    server = relay;
  };
  const cut = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
    server = null;
  };
  await listen();
  onTestFinished(cut);
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return { url: url.toString(), cut, restore: listen };
}

describe.skipIf(!(await postgresAvailable()))('a PostgreSQL server that cannot be reached', () => {
  it('answers 503 database_unavailable with Retry-After, fails /ready, and serves again once the server is back', async () => {
    const relay = await cuttableRelay(new URL(await testPostgres()));
    const s = await startService({ DATABASE_URL: relay.url });
    const image = await noiseJpeg(32, 24);
    const stored = await submitRaw(s.url, image, '?delayMs=3600000');
    expect(stored.status).toBe(202);

    await relay.cut();
    const read = await call(`${s.url}/jobs/${String(stored.body.id)}`);
    expectProblem(read, 503, 'database_unavailable');
    expect(read.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(String(read.body.detail)).not.toContain('nothing was stored'); // a broken commit may have committed
    expectProblem(await submitRaw(s.url, image), 503, 'database_unavailable');
    const ready = await call(`${s.url}/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body.checks).toMatchObject({ database: false });

    await relay.restore();
    const again = await waitFor(async () => {
      const answer = await call(`${s.url}/jobs/${String(stored.body.id)}`);
      return answer.status === 200 ? answer : null;
    });
    expect(again.body).toMatchObject({ id: stored.body.id, status: 'queued' });
    expect((await call(`${s.url}/ready`)).status).toBe(200);
  });
});
