import type pg from 'pg';
import { jobStatuses } from '../../jobs/states.js';
import type { JobSignal } from '../../jobs/store.js';
import { CountDelta } from '../countDelta.js';
import { storeError } from './errors.js';
import { COUNT_SLOTS } from './schema.js';
import { encodeSignals, SignalBatch } from './signals.js';
import { sql } from './statements.js';

/**
 * Tries a transaction gets when PostgreSQL ends it to break a deadlock
 * (two instances ending and requeueing the same jobs in different orders)
 * or a serialization failure: nothing of it stood, so it runs again.
 */
const TRIES = 3;
const RETRIED_CODES = new Set(['40P01', '40001']);

/** One verb's transaction: its connection, and the counts and signals it moves, written just before it commits. */
export class Transaction {
  readonly counts = new CountDelta();
  readonly signals = new SignalBatch();

  constructor(private readonly client: pg.PoolClient) {}

  async rows<R extends pg.QueryResultRow>(query: pg.QueryConfig): Promise<R[]> {
    return (await this.client.query<R>(query)).rows;
  }

  async changed(query: pg.QueryConfig): Promise<number> {
    return (await this.client.query(query)).rowCount ?? 0;
  }
}

/**
 * How the store's verbs reach the database: single statements on the pool,
 * and transactions on a pooled connection held for their own statements
 * only. Errors reach callers as `storeError` names them: a full disk, a
 * server that cannot be reached, or the error itself. `deliver` gives a committed transaction's signals to
 * this instance's listeners.
 */
export function createTransactions(pool: pg.Pool, instanceId: string, deliver: (signal: JobSignal) => void) {
  const connect = async (): Promise<pg.PoolClient> => {
    try {
      return await pool.connect();
    } catch (error) {
      throw storeError(error);
    }
  };

  /** One statement on its own (its own transaction). */
  const query = async <R extends pg.QueryResultRow>(statement: pg.QueryConfig): Promise<pg.QueryResult<R>> => {
    try {
      return await pool.query<R>(statement);
    } catch (error) {
      throw storeError(error);
    }
  };
  const rows = async <R extends pg.QueryResultRow>(statement: pg.QueryConfig): Promise<R[]> => (await query<R>(statement)).rows;

  /**
   * Runs `body` in one transaction, then writes the counts it moved (one
   * statement, to one slot picked at random) and sends its signals, and
   * commits. Its signals go to this instance's listeners once committed.
   *
   * The pool's connections pipeline (see `openPostgres`): BEGIN goes out
   * with the body's first statement, and COMMIT with the counts, so a
   * transaction costs two round trips fewer. The server runs them in order,
   * each its own step: a failed counts statement leaves the transaction
   * aborted and its COMMIT answered ROLLBACK, which fails the transaction
   * here; a BEGIN fails only on a broken connection (a connection is never
   * pooled inside a transaction), on which the body's statements fail too.
   */
  async function transaction<T>(body: (tx: Transaction) => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      const client = await connect();
      const tx = new Transaction(client);
      let result: T;
      let signals: JobSignal[];
      const begun = client.query('BEGIN');
      // Its failure is the body's too, and is thrown below; it must not also surface as an unhandled rejection.
      begun.catch(() => undefined);
      try {
        result = await body(tx);
        await begun;
        signals = tx.signals.signals();
        const payloads = signals.length > 0 ? encodeSignals(instanceId, signals) : [];
        const last: pg.QueryConfig[] = [];
        if (!tx.counts.empty) {
          const { jobs, images } = tx.counts;
          const slot = Math.floor(Math.random() * COUNT_SLOTS);
          last.push(sql.moveCounts.bind(slot, jobStatuses.map((status) => jobs[status]), jobStatuses.map((status) => images[status]), payloads));
        } else if (payloads.length > 0) {
          last.push(sql.notify.bind(payloads));
        }
        const ended = await Promise.all([...last, { text: 'COMMIT' }].map((statement) => client.query(statement)));
        if (ended.at(-1)?.command !== 'COMMIT') throw new Error('the transaction was rolled back at its commit');
      } catch (error) {
        const broken = await client.query('ROLLBACK').then(() => false, () => true);
        client.release(broken);
        const code = (error as { code?: unknown } | null)?.code;
        if (tries < TRIES && typeof code === 'string' && RETRIED_CODES.has(code)) continue;
        throw storeError(error);
      }
      client.release();
      for (const signal of signals) deliver(signal);
      return result;
    }
  }

  return { connect, query, rows, transaction };
}
