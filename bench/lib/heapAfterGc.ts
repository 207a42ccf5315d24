import type { WebSocket as WebSocketType } from 'undici-types';

/**
 * The V8 heap a running node process holds after a full garbage collection,
 * read from outside through its inspector, so the service needs no debug
 * route or flag of its own: SIGUSR1 opens the inspector (node's default
 * port, 9229, on loopback), one DevTools session asks for a full collection
 * (`HeapProfiler.collectGarbage`) and then for `process.memoryUsage()`, and
 * the process is told to close the inspector again once the session ends, so
 * that its descriptors at rest are what they were. What it costs the process
 * (one full collection, well under a second) falls outside any timed span.
 *
 * Node 20's WebSocket client is behind `--experimental-websocket`, which the
 * benches that call this are started with.
 */

const INSPECTOR = 'http://127.0.0.1:9229';
const OPEN_TIMEOUT_MS = 10_000;
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The DevTools endpoint of the process whose inspector listens; retried while SIGUSR1 takes effect. */
async function debuggerUrl(): Promise<string> {
  const deadline = performance.now() + OPEN_TIMEOUT_MS;
  for (;;) {
    try {
      const [target] = (await (await fetch(`${INSPECTOR}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
      if (target !== undefined) return target.webSocketDebuggerUrl;
    } catch {
      // Not listening yet.
    }
    if (performance.now() > deadline) throw new Error(`no inspector at ${INSPECTOR} within ${OPEN_TIMEOUT_MS} ms`);
    await delay(50);
  }
}

/** One DevTools session: `call` sends a method and resolves with its result. */
async function session(url: string): Promise<{ call(method: string, params?: object): Promise<unknown>; close(): void }> {
  const { WebSocket } = globalThis as unknown as { WebSocket?: new (url: string) => WebSocketType };
  if (WebSocket === undefined) throw new Error('no WebSocket client: start node with --experimental-websocket');
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', reject, { once: true });
  });
  const pending = new Map<number, (result: unknown) => void>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  });
  let nextId = 0;
  return {
    call(method, params = {}) {
      nextId += 1;
      const id = nextId;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        socket.send(JSON.stringify({ id, method, params }));
      });
    },
    close: () => socket.close(),
  };
}

/** Evaluates `expression` in the process and answers its value. */
async function evaluate(devtools: Awaited<ReturnType<typeof session>>, expression: string): Promise<unknown> {
  const reply = (await devtools.call('Runtime.evaluate', { expression, returnByValue: true })) as { result: { value: unknown } };
  return reply.result.value;
}

/** Bytes of V8 heap in use in process `pid` right after a full collection. */
export async function heapUsedAfterFullGc(pid: number): Promise<number> {
  process.kill(pid, 'SIGUSR1');
  const devtools = await session(await debuggerUrl());
  try {
    // Another process's inspector on the same port would answer for it: make sure it is ours.
    const answering = await evaluate(devtools, 'process.pid');
    if (answering !== pid) throw new Error(`the inspector at ${INSPECTOR} belongs to process ${String(answering)}, not ${pid}`);
    await devtools.call('HeapProfiler.collectGarbage');
    const heapUsed = Number(await evaluate(devtools, 'process.memoryUsage().heapUsed'));
    // inspector.close() waits for open sessions to end, so it runs after this one has closed.
    await evaluate(devtools, "setTimeout(() => process.getBuiltinModule('node:inspector').close(), 200), 0");
    return heapUsed;
  } finally {
    devtools.close();
  }
}
