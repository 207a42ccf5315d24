import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * The shared folder of real photos the image benches convert: read where it
 * lies, never copied into the repository. It sits beside the repository's
 * main checkout (`../shared/fixtures/photos`); a git worktree, which lives
 * elsewhere, finds it from that checkout, named by git's common directory.
 */
export function sharedPhotos(root: string): string {
  let checkout = root;
  try {
    const common = execFileSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    checkout = path.dirname(common.trim());
  } catch {
    // Not a git checkout (an unpacked release, say): the folder is looked for beside `root`.
  }
  return path.resolve(checkout, '../shared/fixtures/photos');
}
