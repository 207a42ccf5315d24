import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { HttpProblem } from './problem.js';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Compares in constant time whatever the lengths (digests are of equal size). */
function tokenMatches(given: string, expected: Buffer): boolean {
  return timingSafeEqual(digest(given), expected);
}

function bearer(ctx: Context): string | null {
  const match = /^Bearer ([^\s]+)$/i.exec(ctx.get('authorization'));
  return match?.[1] ?? null;
}

/** Paths anyone may read: the liveness probe. */
const PUBLIC_PATHS = new Set(['/health']);

/**
 * With API_TOKEN set, every route but `/health` needs `Authorization: Bearer <token>`.
 * Debug routes answer loopback clients only, unless the token is set and given.
 */
export function authMiddleware(apiToken: string | undefined): Middleware {
  const expected = apiToken === undefined ? null : digest(apiToken);
  return async (ctx, next) => {
    if (PUBLIC_PATHS.has(ctx.path)) return next();
    const given = bearer(ctx);
    if (expected !== null && (given === null || !tokenMatches(given, expected))) {
      throw new HttpProblem(401, 'unauthorized', 'Send the API token as "Authorization: Bearer <token>".', {
        'WWW-Authenticate': 'Bearer realm="image-jobs"',
      });
    }
    if (ctx.path.startsWith('/debug/') && expected === null && !isLoopback(ctx.socket.remoteAddress)) {
      throw new HttpProblem(403, 'debug_loopback_only', 'Debug routes answer loopback clients only unless API_TOKEN is set.');
    }
    return next();
  };
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
