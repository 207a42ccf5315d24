import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createTempStore } from '../src/storage/tempStore.js';
import { tempDir } from './support/db.js';

describe('the temp store', () => {
  it('hashes an input while it streams to disk when asked, and only then', async () => {
    const store = createTempStore(path.join(tempDir(), 'tmp'));
    const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(50_000, i)); // 2 MB in many chunks, as a socket delivers them
    const whole = Buffer.concat(chunks);
    const key = store.newKey();
    const hashed = await store.writeInput(key, 0, Readable.from(chunks), Number.MAX_SAFE_INTEGER, undefined, true);
    const plain = await store.writeInput(key, 1, Readable.from(chunks), Number.MAX_SAFE_INTEGER);
    await Promise.all([hashed.synced, plain.synced]);
    expect(hashed.sha256).toBe(createHash('sha256').update(whole).digest('hex'));
    expect(plain.sha256).toBeNull();
    expect(fs.readFileSync(store.inputPath(key, 0)).equals(whole)).toBe(true);
    await store.close();
  });
});
