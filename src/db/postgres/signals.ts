import pg from 'pg';
import type { Logger } from 'pino';
import type { JobStatus } from '../../jobs/states.js';
import type { JobSignal } from '../../jobs/store.js';
import { SIGNAL_CHANNEL } from './statements.js';

/**
 * What one transaction announces: the earliest `runAt` it made due, and the
 * jobs it ended by state. Kept while the transaction runs; sent with NOTIFY
 * just before its commit, so every instance hears it once it has committed,
 * and given to this instance's listeners right after.
 */
export class SignalBatch {
  private dueAt: number | null = null;
  private readonly ended = new Map<JobStatus, number[]>();

  due(runAt: number): void {
    this.dueAt = this.dueAt === null ? runAt : Math.min(this.dueAt, runAt);
  }

  end(status: JobStatus, jobIds: readonly number[]): void {
    if (jobIds.length === 0) return;
    const ids = this.ended.get(status);
    if (ids) ids.push(...jobIds);
    else this.ended.set(status, [...jobIds]);
  }

  signals(): JobSignal[] {
    const signals: JobSignal[] = this.dueAt === null ? [] : [{ kind: 'due', runAt: this.dueAt }];
    for (const [status, jobIds] of this.ended) signals.push({ kind: 'ended', jobIds, status });
    return signals;
  }
}

/** A notification as sent: the instance whose commit it announces, and its signals. */
interface Payload {
  readonly from: string;
  readonly signals: readonly JobSignal[];
}

/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; JSON of plain ASCII, so characters are bytes. */
const MAX_PAYLOAD_BYTES = 7_900;
/** Job ids one `ended` signal of a payload carries at the most: 400 ids of 16 digits fit in any payload. */
const IDS_PER_SIGNAL = 400;

/**
 * The payloads announcing `signals`: one while they fit, as many as needed
 * for a transaction that ended thousands of jobs (each still whole JSON a
 * listener can act on alone). `from` is an instance id, short and ASCII.
 */
export function encodeSignals(from: string, signals: readonly JobSignal[]): string[] {
  const pieces = signals.flatMap((signal): JobSignal[] => {
    if (signal.kind === 'due' || signal.jobIds.length <= IDS_PER_SIGNAL) return [signal];
    const chunks: JobSignal[] = [];
    for (let i = 0; i < signal.jobIds.length; i += IDS_PER_SIGNAL) {
      chunks.push({ kind: 'ended', status: signal.status, jobIds: signal.jobIds.slice(i, i + IDS_PER_SIGNAL) });
    }
    return chunks;
  });
  const payloads: string[] = [];
  let current: JobSignal[] = [];
  for (const piece of pieces) {
    const candidate = JSON.stringify({ from, signals: [...current, piece] } satisfies Payload);
    if (current.length > 0 && Buffer.byteLength(candidate) > MAX_PAYLOAD_BYTES) {
      payloads.push(JSON.stringify({ from, signals: current } satisfies Payload));
      current = [piece];
    } else {
      current.push(piece);
    }
  }
  if (current.length > 0) payloads.push(JSON.stringify({ from, signals: current } satisfies Payload));
  return payloads;
}

function decodeSignals(text: string): Payload | null {
  try {
    const payload = JSON.parse(text) as Partial<Payload> | null;
    return typeof payload?.from === 'string' && Array.isArray(payload.signals) ? (payload as Payload) : null;
  } catch {
    return null;
  }
}

export interface SignalListenerOptions {
  /** Connection settings: the pool's own, for a connection of its own outside the pool. */
  readonly connection: pg.ClientConfig;
  /** Signals from this instance are given locally at commit, and skipped when they come back. */
  readonly instanceId: string;
  readonly log: Logger;
  readonly deliver: (signal: JobSignal) => void;
  /** The clock a reconnection's `due` signal is stamped with. */
  readonly now: () => number;
}

const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 5_000;

/**
 * LISTENs on one connection of its own (a pooled one would be handed to
 * other work), and gives other instances' signals to `deliver`. When the
 * connection drops, it connects again with a growing pause, then delivers a
 * `due` signal stamped now: notifications sent meanwhile are lost, so a
 * scheduler must look once for itself. Resolves once listening.
 */
export async function listenForSignals(options: SignalListenerOptions): Promise<{ stop(): Promise<void> }> {
  const { log } = options;
  let client: pg.Client | null = null;
  let stopped = false;
  let retryMs = FIRST_RETRY_MS;
  let retryTimer: NodeJS.Timeout | undefined;

  const onNotification = (message: pg.Notification): void => {
    if (message.channel !== SIGNAL_CHANNEL || message.payload === undefined) return;
    const payload = decodeSignals(message.payload);
    if (payload === null) {
      log.warn({ channel: message.channel }, 'ignored a notification that is not a job signal');
      return;
    }
    if (payload.from === options.instanceId) return;
    for (const signal of payload.signals) options.deliver(signal);
  };

  const connect = async (): Promise<void> => {
    const next = new pg.Client(options.connection);
    next.on('notification', onNotification);
    // A failed connection emits `error` then `end`, or only `end`: both lead to one reconnection.
    next.on('error', (error) => log.warn({ err: error }, 'the PostgreSQL connection listening for job signals failed'));
    next.on('end', () => {
      if (client !== next) return;
      client = null;
      if (!stopped) reconnectLater();
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${SIGNAL_CHANNEL}`);
    } catch (error) {
      await next.end().catch(() => undefined);
      throw error;
    }
    if (stopped) {
      await next.end();
      return;
    }
    client = next;
  };

  const reconnectLater = (): void => {
    log.warn({ retryMs }, 'listening for job signals again after a pause; signals sent meanwhile are missed');
    retryTimer = setTimeout(() => {
      connect().then(
        () => {
          if (stopped) return;
          retryMs = FIRST_RETRY_MS;
          log.info('listening for job signals again');
          options.deliver({ kind: 'due', runAt: options.now() });
        },
        (error: unknown) => {
          log.warn({ err: error }, 'could not listen for job signals again');
          retryMs = Math.min(retryMs * 2, LAST_RETRY_MS);
          if (!stopped) reconnectLater();
        },
      );
    }, retryMs);
  };

  await connect();
  return {
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(retryTimer);
      const current = client;
      client = null;
      await current?.end();
    },
  };
}
