/**
 * Group commit: writes requested in the same turn of the event loop run as
 * one batch at the end of that turn (`setImmediate`), so concurrent requests
 * or attempts share one transaction and one commit instead of paying for one
 * each (and, on SQLite, one fsync of the WAL). Nothing waits for a batch to
 * fill: a lone write goes out in the turn it was asked for, and batches grow
 * by themselves when the process is busy.
 *
 * `write` gets the items in the order they were asked for and resolves to one
 * result per item, in the same order. If it throws or rejects, every caller
 * of that batch gets the error: the transaction was rolled back for all of them.
 */
export function groupCommit<I, O>(write: (items: readonly I[]) => Promise<readonly O[]>): (item: I) => Promise<O> {
  let pending: { item: I; resolve: (result: O) => void; reject: (error: unknown) => void }[] = [];

  const flush = async (): Promise<void> => {
    const batch = pending;
    pending = [];
    let results: readonly O[];
    try {
      results = await write(batch.map((entry) => entry.item));
    } catch (error) {
      for (const entry of batch) entry.reject(error);
      return;
    }
    batch.forEach((entry, i) => entry.resolve(results[i] as O));
  };

  return (item) =>
    new Promise<O>((resolve, reject) => {
      if (pending.length === 0) setImmediate(() => void flush());
      pending.push({ item, resolve, reject });
    });
}
