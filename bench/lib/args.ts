/** Command-line parsing shared by the benchmark runners: boolean flags, valued options, lists, ranges. */
export interface Args {
  readonly values: ReadonlyMap<string, string>;
  has(flag: string): boolean;
  get(flag: string): string | undefined;
  /** A comma-separated subset of `allowed` (all of it when the option is absent). */
  list<T extends string>(flag: string, allowed: readonly T[]): T[];
  /** A number in min..max, or `fallback` when the option is absent. */
  num(flag: string, fallback: number, min: number, max: number): number;
}

export function parseArgs(
  argv: readonly string[],
  flags: ReadonlySet<string>,
  valued: ReadonlySet<string>,
  usage: (problem: string) => never,
): Args {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (flags.has(a)) values.set(a, 'true');
    else if (valued.has(a)) {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) usage(`${a} needs a value`);
      values.set(a, v);
    } else usage(`unknown argument ${a}`);
  }
  return {
    values,
    has: (flag) => values.has(flag),
    get: (flag) => values.get(flag),
    list<T extends string>(flag: string, allowed: readonly T[]): T[] {
      const v = values.get(flag);
      if (v === undefined) return [...allowed];
      const items = v.split(',').map((s) => s.trim()) as T[];
      for (const item of items) {
        if (!allowed.includes(item)) usage(`${flag}: unknown ${item} (one of ${allowed.join(', ')})`);
      }
      return items;
    },
    num(flag, fallback, min, max) {
      const v = values.get(flag);
      if (v === undefined) return fallback;
      const n = Number(v);
      if (!Number.isFinite(n) || n < min || n > max) usage(`${flag} must be a number in ${min}..${max}`);
      return n;
    },
  };
}
