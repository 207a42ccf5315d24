import os from 'node:os';

/** The middle value (the upper one of an even count); NaN for none. */
export function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** The value at fraction `p` (0..1) of numbers sorted in ascending order; NaN for none. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

/** The machine's 1, 5 and 15-minute load averages, as the benches print them. */
export function loadAverages(): string {
  return os
    .loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');
}
