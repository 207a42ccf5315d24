import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { localOutputPath } from '../src/destination/index.js';
import { storeLocally } from '../src/destination/localStore.js';
import { tempDir } from './support/db.js';

describe('local output store', () => {
  it('puts a result at <jobId>/<index>.<ext> and records that relative location', async () => {
    const dir = tempDir();
    const outputDir = path.join(dir, 'output');
    const source = path.join(dir, 'converted');
    fs.writeFileSync(source, 'first result');
    const location = await storeLocally(outputDir, 12, 3, 'jpeg', source);
    expect(location).toBe('12/3.jpg');
    expect(localOutputPath(outputDir, 12, 3, 'jpeg')).toBe(path.join(outputDir, '12', '3.jpg'));
    expect(fs.readFileSync(path.join(outputDir, location), 'utf8')).toBe('first result');
    expect(fs.existsSync(source)).toBe(true);
  });

  it('overwrites on a repeated attempt rather than adding a second file, leaving no temporary name', async () => {
    const dir = tempDir();
    const outputDir = path.join(dir, 'output');
    const source = path.join(dir, 'converted');
    fs.writeFileSync(source, 'attempt 1');
    await storeLocally(outputDir, 5, 0, 'webp', source);
    // A crashed attempt's half-copied leftover is replaced, not kept beside the result.
    fs.writeFileSync(path.join(outputDir, '5', '0.webp.partial'), 'half');
    fs.writeFileSync(source, 'attempt 2');
    await storeLocally(outputDir, 5, 0, 'webp', source);
    expect(fs.readdirSync(path.join(outputDir, '5'))).toEqual(['0.webp']);
    expect(fs.readFileSync(path.join(outputDir, '5', '0.webp'), 'utf8')).toBe('attempt 2');
  });
});
