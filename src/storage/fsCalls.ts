import fs from 'node:fs';
import { promisify } from 'node:util';

/**
 * The file calls on the submission path, as promises over fs's callback
 * forms: per call they cost the main thread less than fs/promises, whose
 * FileHandle objects are tracked and closed through more machinery.
 */
export const open = promisify(fs.open);
export const write = promisify(fs.write);
export const fsync = promisify(fs.fsync);
export const close = promisify(fs.close);
