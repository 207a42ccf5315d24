import fsp from 'node:fs/promises';

/**
 * fsyncs a file or a folder by path. A folder's fsync makes the names in it
 * durable: a renamed or newly created file survives power loss only then.
 */
export async function fsyncPath(target: string): Promise<void> {
  const handle = await fsp.open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
