/** Filenames are kept for people to read; cap their size and strip control characters. */
export function cleanFilename(name: string | undefined): string | null {
  if (name === undefined) return null;
  const printable = [...name].filter((char) => char >= ' ' && char !== '\u007f').join('');
  const cleaned = printable.slice(0, 255);
  return cleaned === '' ? null : cleaned;
}
