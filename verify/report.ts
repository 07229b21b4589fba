/** Markdown tables of segment results: one row per fault class, violations marked against promises. */
import { type CheckResult, VIOLATION_KINDS } from './check.js';
import { type FaultClass, promised } from './promises.js';

export interface SegmentResult {
  target: string;
  fault: FaultClass;
  seed: number;
  faultsApplied: number;
  durationMs: number;
  result: CheckResult;
  /** Promised kinds with violations. */
  broken: string[];
}

export function breaks(fault: FaultClass, r: CheckResult): string[] {
  return VIOLATION_KINDS.filter((k) => r.counts[k] > 0 && promised(fault, k));
}

/** A cell: the count, `**n ✗**` when it breaks a promise, `n (allowed)` when the docs allow it. */
function cell(fault: FaultClass, kind: (typeof VIOLATION_KINDS)[number], n: number): string {
  if (n === 0) return '0';
  return promised(fault, kind) ? `**${n} ✗**` : `${n} (allowed)`;
}

export function table(results: SegmentResult[]): string {
  const head = [
    'target',
    'fault class',
    'faults',
    's',
    'pub q0/q1/q2',
    'acked',
    'recv',
    'conns',
    ...VIOLATION_KINDS,
  ];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const s of results) {
    const st = s.result.stats;
    lines.push(
      `| ${[
        s.target,
        s.fault,
        String(s.faultsApplied),
        String(Math.round(s.durationMs / 1000)),
        st.publishes.join('/'),
        String(st.acked),
        String(st.receives),
        String(st.connects),
        ...VIOLATION_KINDS.map((k) => cell(s.fault, k, s.result.counts[k])),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

export function examples(results: SegmentResult[]): string {
  const out: string[] = [];
  for (const s of results) {
    for (const k of VIOLATION_KINDS) {
      if (s.result.counts[k] === 0) continue;
      out.push(
        `- ${s.target} / ${s.fault} / ${k}${promised(s.fault, k) ? ' (broken promise)' : ' (allowed)'}: ${s.result.examples[k].join('; ')}`,
      );
    }
  }
  return out.join('\n');
}
