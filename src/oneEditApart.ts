/**
 * Whether `a` becomes `b` by one edit: a character inserted, deleted or
 * replaced, or two neighbours swapped (`CONCURERNT` for `CONCURRENT`, the
 * slip a typist makes most). Equal strings are zero edits apart, not one.
 */
export function oneEditApart(a: string, b: string): boolean {
  if (a === b || Math.abs(a.length - b.length) > 1) return false;
  let start = 0;
  while (a[start] === b[start]) start += 1;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA -= 1;
    endB -= 1;
  }
  // What differs lies between `start` and the ends: at most one character on each side, or a swapped pair.
  const middleA = a.slice(start, endA);
  const middleB = b.slice(start, endB);
  if (middleA.length <= 1 && middleB.length <= 1) return true;
  return middleA.length === 2 && middleB.length === 2 && middleA[0] === middleB[1] && middleA[1] === middleB[0];
}
