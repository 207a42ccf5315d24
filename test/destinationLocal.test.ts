import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { localOutputPath } from '../src/destination/index.js';
import { createLocalStore } from '../src/destination/localStore.js';
import { tempDir } from './support/db.js';

describe('local output store', () => {
  it('moves a result to <jobId>/<index>.<ext> and records that relative location', async () => {
    const dir = tempDir();
    const outputDir = path.join(dir, 'output');
    const source = path.join(dir, 'converted');
    fs.writeFileSync(source, 'first result');
    const location = await createLocalStore(outputDir).store(12, 3, 'jpeg', source);
    expect(location).toBe('12/3.jpg');
    expect(localOutputPath(outputDir, 12, 3, 'jpeg')).toBe(path.join(outputDir, '12', '3.jpg'));
    expect(fs.readFileSync(path.join(outputDir, location), 'utf8')).toBe('first result');
    expect(fs.existsSync(source)).toBe(false);
  });

  it('replaces the result of an earlier attempt rather than adding a second file', async () => {
    const dir = tempDir();
    const store = createLocalStore(path.join(dir, 'output'));
    const source = path.join(dir, 'converted');
    fs.writeFileSync(source, 'attempt 1');
    await store.store(5, 0, 'webp', source);
    fs.writeFileSync(source, 'attempt 2');
    await store.store(5, 0, 'webp', source);
    expect(fs.readdirSync(path.join(dir, 'output', '5'))).toEqual(['0.webp']);
    expect(fs.readFileSync(path.join(dir, 'output', '5', '0.webp'), 'utf8')).toBe('attempt 2');
  });
});
