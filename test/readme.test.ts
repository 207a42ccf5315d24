import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { problemCodesInSource } from './support/problemCodes.js';

const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../README.md'), 'utf8');

/** The codes of the README's error-code reference, in order: the first column of its table, from its heading to the next. */
function documentedCodes(): string[] {
  const section = /^### Error codes\n([\s\S]*?)\n#{2,3} /m.exec(readme);
  if (section === null) throw new Error('the README has no "### Error codes" section');
  return [...(section[1] ?? '').matchAll(/^\| `([a-z_]+)` \| \d{3} \|/gm)].map((row) => row[1] ?? '');
}

describe('the README', () => {
  it('lists every error code the code base can answer', () => {
    const found = problemCodesInSource();
    // The reader of the source found the codes of the main routes: it reads what it should.
    expect(found.map((f) => f.code)).toEqual(expect.arrayContaining(['invalid_options', 'job_not_found', 'queue_full', 'method_not_allowed', 'image_corrupt']));
    const documented = new Set(documentedCodes());
    const missing = found.filter(({ code }) => !documented.has(code)).map(({ code, at }) => `${code} (${at})`);
    expect(missing).toEqual([]);
  });

  it('lists each code once', () => {
    const codes = documentedCodes();
    expect(codes.length).toBeGreaterThan(0);
    expect(new Set(codes).size).toBe(codes.length);
  });
});
