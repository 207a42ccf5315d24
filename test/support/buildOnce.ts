import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * Vitest global setup: compiles the service into `dist/` once per run, so
 * the tests that start it as a child process run what `npm start` runs.
 */
export default function buildOnce(): void {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: path.resolve(import.meta.dirname, '../..'), stdio: 'inherit' });
}
