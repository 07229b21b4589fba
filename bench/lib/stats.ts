/** Small, dependency-free statistics for benchmark samples. Inputs are never mutated. */

function sorted(xs: readonly number[]): number[] {
  if (xs.length === 0) throw new RangeError('no samples');
  return [...xs].sort((a, b) => a - b);
}

/** The p-th percentile (0..100), linear interpolation between closest ranks. */
export function percentile(xs: readonly number[], p: number): number {
  if (p < 0 || p > 100) throw new RangeError(`percentile ${p} is not in 0..100`);
  const s = sorted(xs);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo] + (s[hi] - s[lo]) * (rank - lo);
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('no samples');
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

export function min(xs: readonly number[]): number {
  return sorted(xs)[0];
}

export function max(xs: readonly number[]): number {
  const s = sorted(xs);
  return s[s.length - 1];
}

/** Interquartile range relative to the median, in percent: a robust measure of run-to-run spread. */
export function relativeIqr(xs: readonly number[]): number {
  const m = median(xs);
  return m === 0 ? 0 : ((percentile(xs, 75) - percentile(xs, 25)) / m) * 100;
}
