import { describe, expect, it } from 'vitest';
import { coalesce } from '../src/storage/fsync.js';

/** A task whose runs the test ends by hand, recording how many calls were made before each began. */
function manualTask() {
  const runs: { callsBefore: number; finish: (error?: Error) => void }[] = [];
  let calls = 0;
  const task = () =>
    new Promise<void>((resolve, reject) => {
      runs.push({ callsBefore: calls, finish: (error) => (error ? reject(error) : resolve()) });
    });
  return { runs, task, called: () => (calls += 1) };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('coalesce', () => {
  it('serves the calls of one turn with one run, and every call made during a run with one run started after it', async () => {
    const { runs, task, called } = manualTask();
    const shared = coalesce(task);
    const done: string[] = [];
    const call = (name: string) => {
      called();
      return shared().then(() => done.push(name));
    };
    const firstTurn = [call('a'), call('b')];
    await settle();
    expect(runs).toHaveLength(1); // a and b share one run, begun after both asked
    expect(runs[0]?.callsBefore).toBe(2);
    const waiting = [call('c'), call('d'), call('e')];
    await settle();
    expect(runs).toHaveLength(1); // c, d and e do not join the run under way
    runs[0]?.finish();
    await Promise.all(firstTurn);
    await settle();
    expect(done).toEqual(['a', 'b']);
    expect(runs).toHaveLength(2); // one more run for c, d and e, begun after all three asked
    expect(runs[1]?.callsBefore).toBe(5);
    runs[1]?.finish();
    await Promise.all(waiting);
    expect(done).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('passes a failed run to its callers and still runs for those waiting behind it', async () => {
    const { runs, task } = manualTask();
    const shared = coalesce(task);
    const failing = shared();
    await settle();
    const behind = shared();
    runs[0]?.finish(new Error('EIO'));
    await expect(failing).rejects.toThrow('EIO');
    await settle();
    expect(runs).toHaveLength(2);
    runs[1]?.finish();
    await expect(behind).resolves.toBeUndefined();
  });
});
