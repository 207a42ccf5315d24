import { describe, expect, it } from 'vitest';
import { coalesce } from '../src/storage/fsync.js';

/** A task whose runs the test ends by hand, recording when each began. */
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
  it('runs at once when idle, and serves every call made during a run with one run started after it', async () => {
    const { runs, task, called } = manualTask();
    const shared = coalesce(task);
    const done: string[] = [];
    const call = (name: string) => {
      called();
      return shared().then(() => done.push(name));
    };
    const first = call('a');
    expect(runs).toHaveLength(1);
    const waiting = [call('b'), call('c'), call('d')];
    expect(runs).toHaveLength(1); // b, c and d do not join the run under way
    runs[0]?.finish();
    await first;
    await settle();
    expect(done).toEqual(['a']);
    expect(runs).toHaveLength(2); // one more run for b, c and d, begun after all three asked
    expect(runs[1]?.callsBefore).toBe(4);
    runs[1]?.finish();
    await Promise.all(waiting);
    expect(done).toEqual(['a', 'b', 'c', 'd']);
  });

  it('passes a failed run to its callers and still runs for those waiting behind it', async () => {
    const { runs, task } = manualTask();
    const shared = coalesce(task);
    const failing = shared();
    const behind = shared();
    runs[0]?.finish(new Error('EIO'));
    await expect(failing).rejects.toThrow('EIO');
    await settle();
    expect(runs).toHaveLength(2);
    runs[1]?.finish();
    await expect(behind).resolves.toBeUndefined();
  });
});
