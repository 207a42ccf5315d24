/** The longest `Prefer: wait` honoured, in seconds; a longer one is cut to it (RFC 7240 lets a server do so). */
export const MAX_WAIT_SECONDS = 60;

/**
 * The `wait` preference of a `Prefer` header (RFC 7240, section 4.3), in
 * seconds, at most `MAX_WAIT_SECONDS`; null when there is none or it is not a
 * whole number (a preference the server cannot read is ignored, as the RFC
 * asks). Other preferences and parameters are ignored.
 */
export function preferredWait(header: string): number | null {
  for (const preference of header.split(',')) {
    const match = /^\s*wait\s*=\s*(?:(\d{1,9})|"(\d{1,9})")\s*(?:;.*)?$/i.exec(preference);
    if (match) return Math.min(Number(match[1] ?? match[2]), MAX_WAIT_SECONDS);
  }
  return null;
}
