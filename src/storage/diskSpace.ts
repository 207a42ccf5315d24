import fsp from 'node:fs/promises';
import type { Logger } from 'pino';

/**
 * The one owner of the free-disk check. Free space is what the volume
 * holding DATA_DIR reports now (statfs, read at each check: a figure a
 * second old let a burst of submissions fill the disk) minus what uploads in
 * flight have reserved and not written yet. A submission reserves the bytes
 * it may write before it reads its body and gives back the rest once stored
 * or refused, so `disk_low` comes before the disk is full, however many
 * uploads run side by side.
 */

/** Bytes a submission may still write, held against the free space until it is stored or refused. */
export interface DiskReservation {
  /** `bytes` of it are now written: the volume's own figure shows them from here on. */
  landed(bytes: number): void;
  /** Gives back what was not written; idempotent. */
  release(): void;
}

/** One reading of the volume. */
export interface DiskFigures {
  /** What the volume reports free for an unprivileged writer. */
  readonly freeBytes: number;
  /** Reserved by uploads in flight and not written yet. */
  readonly reservedBytes: number;
  /** Free minus reserved: what a new write may count on. */
  readonly availableBytes: number;
  /** Available is below MIN_FREE_DISK_BYTES: new submissions are refused and `/ready` fails. */
  readonly low: boolean;
}

/** A reservation would take the disk below MIN_FREE_DISK_BYTES; nothing was reserved. */
export class DiskLowError extends Error {
  constructor(readonly figures: DiskFigures) {
    super(`only ${figures.availableBytes} bytes of disk are available (${figures.reservedBytes} reserved by uploads in flight)`);
    this.name = 'DiskLowError';
  }
}

export type DiskSpace = ReturnType<typeof createDiskSpace>;

export function createDiskSpace(dir: string, minFreeBytes: number, log: Logger) {
  let reservedBytes = 0;
  /** Whether the last reading was low, and whether a full disk was met since: each is logged once when it begins and once when it ends. */
  let lowNoticed = false;
  let fullNoticed = false;

  async function measure(): Promise<DiskFigures> {
    const stats = await fsp.statfs(dir);
    const freeBytes = stats.bavail * stats.bsize;
    const availableBytes = freeBytes - reservedBytes;
    const figures = { freeBytes, reservedBytes, availableBytes, low: availableBytes < minFreeBytes };
    if (figures.low && !lowNoticed) {
      log.warn({ dir, ...figures, minFreeBytes },
        'disk low: submissions are refused with 503 disk_low and /ready fails until space is freed on the volume holding DATA_DIR (or MIN_FREE_DISK_BYTES lowered)');
    } else if (!figures.low && (lowNoticed || fullNoticed)) {
      log.info({ dir, ...figures }, 'disk space is back: submissions are accepted again');
      fullNoticed = false;
    }
    lowNoticed = figures.low;
    return figures;
  }

  return {
    measure,

    /**
     * Holds `bytes` against the free space for a submission about to write
     * them; throws `DiskLowError` when that would leave less than
     * MIN_FREE_DISK_BYTES. Counted before the volume is read, so two
     * submissions checking at once each see the other's share.
     */
    async reserve(bytes: number): Promise<DiskReservation> {
      let held = bytes;
      reservedBytes += held;
      const reservation: DiskReservation = {
        landed(written: number): void {
          const part = Math.min(written, held);
          held -= part;
          reservedBytes -= part;
        },
        release(): void {
          reservedBytes -= held;
          held = 0;
        },
      };
      try {
        const figures = await measure();
        if (figures.low) throw new DiskLowError(figures);
        return reservation;
      } catch (error) {
        reservation.release();
        throw error;
      }
    },

    /**
     * Tells the operator, once until space returns, that a write met a full
     * disk; `context` says which (each such write is answered or retried by its caller).
     */
    noticeFull(context: Record<string, unknown>): void {
      if (fullNoticed) return;
      fullNoticed = true;
      log.error({ dir, ...context },
        'disk full: a write found no room on the volume holding DATA_DIR; free space there (or grow it): submissions get 503 disk_full and jobs retry until then');
    },
  };
}
