import { pino, type Logger } from 'pino';

/**
 * The service's structured logger: one JSON line per event. Never give it
 * image bytes, secrets or a URL's query string.
 *
 * Lines are written synchronously: each is on stdout before the next
 * statement runs, so the line logged just before the process ends itself
 * with SIGKILL (or exits on a start-up failure) is never lost in a pending
 * asynchronous write, and a slow reader of stdout holds the service back
 * instead of growing a buffer in memory.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.authorization'], censor: '[redacted]' },
    },
    pino.destination({ dest: 1, sync: true }),
  );
}
