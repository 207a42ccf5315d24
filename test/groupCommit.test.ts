import { describe, expect, it } from 'vitest';
import { groupCommit } from '../src/jobs/groupCommit.js';

describe('groupCommit', () => {
  it('writes the calls of one event-loop turn as one batch, in order, and answers each caller with its own result', async () => {
    const batches: number[][] = [];
    const double = groupCommit(async (items: readonly number[]) => {
      batches.push([...items]);
      return items.map((item) => item * 2);
    });
    const first = await Promise.all([double(1), double(2), double(3)]);
    const second = await double(4);
    expect(first).toEqual([2, 4, 6]);
    expect(second).toBe(8);
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it('fails every caller of a batch whose write throws, and goes on with the next batch', async () => {
    let fail = true;
    const write = groupCommit(async (items: readonly string[]) => {
      if (fail) throw new Error('disk I/O error');
      return items.map((item) => item.toUpperCase());
    });
    const failed = await Promise.allSettled([write('a'), write('b')]);
    expect(failed.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await write('c')).toBe('C');
  });
});
