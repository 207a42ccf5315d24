import { pino, type Logger } from 'pino';

/**
 * The service's structured logger: one JSON line per event. Never give it
 * image bytes, secrets or a URL's query string.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.authorization'], censor: '[redacted]' },
  });
}
