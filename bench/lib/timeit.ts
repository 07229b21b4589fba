/**
 * Head-to-head timing of two contenders doing the same work. Each contender is warmed up, then
 * calibrated once to a fixed number of iterations that takes about `targetMs`; the repetitions then
 * alternate A B A B ... so that machine noise (other processes, frequency changes, GC of earlier work)
 * falls on both sides alike. Reported: per-repetition ops/s, their medians, the ratio of medians and
 * the ratio within each A/B pair (its spread shows how far the noise reaches).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { median } from './stats.js';

export interface Contender {
  name: string;
  /**
   * Runs `iterations` iterations of the work and returns a value derived from the results, which is
   * accumulated into `sink` so that no work can be proven dead and removed.
   */
  run: (iterations: number) => number;
}

export interface TimeItOptions {
  /** Timed repetitions per contender. */
  reps: number;
  /** Wall time one repetition should take, used to size the iteration count. */
  targetMs: number;
  /** Untimed warm-up per contender before calibration (JIT tiers up, caches fill). */
  warmupMs: number;
  /** Operations one iteration stands for (e.g. packets in one pass over a stream). Default 1. */
  opsPerIteration?: number;
}

export interface ContenderResult {
  name: string;
  iterations: number;
  opsPerIteration: number;
  /** Wall time of each repetition, in milliseconds. */
  samplesMs: number[];
  /** Throughput of each repetition, operations per second. */
  opsPerSec: number[];
  medianOpsPerSec: number;
}

export interface TimeItResult {
  a: ContenderResult;
  b: ContenderResult;
  /** median(A ops/s) / median(B ops/s). */
  ratio: number;
  /** A/B ratio of each alternating pair of repetitions. */
  pairRatios: number[];
}

/** Everything the contenders return is added here; print or check it so it stays observable. */
export const sink = { value: 0 };

/**
 * A full collection before each timed repetition, so neither contender pays for the garbage the other
 * left behind. Uses --expose-gc when given, else enables it at run time (the usual V8 flag trick).
 */
export const gc: (() => void) | undefined = exposeGc();

function exposeGc(): (() => void) | undefined {
  const given = (globalThis as { gc?: () => void }).gc;
  if (typeof given === 'function') return given;
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as () => void) : undefined;
  } catch {
    return undefined;
  }
}

function elapsedMs(c: Contender, iterations: number): number {
  const t0 = process.hrtime.bigint();
  sink.value += c.run(iterations);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Runs the contender for about `ms` milliseconds in growing batches; returns the last batch's ms/iteration. */
function warm(c: Contender, ms: number): number {
  let iterations = 1;
  let spent = 0;
  let perIteration = Number.POSITIVE_INFINITY;
  while (spent < ms) {
    const t = elapsedMs(c, iterations);
    spent += t;
    if (t > 0) perIteration = t / iterations;
    // Grow geometrically but keep single batches short, so calibration reflects optimised code.
    if (t < ms / 8) iterations *= 2;
  }
  return perIteration;
}

function calibrate(c: Contender, targetMs: number, warmupMs: number): number {
  warm(c, warmupMs / 2);
  // A final measurement of a batch of ~targetMs/4 sizes the repetitions.
  const estimate = warm(c, warmupMs / 2);
  let iterations = Math.max(1, Math.round(targetMs / 4 / estimate));
  const t = elapsedMs(c, iterations);
  iterations = Math.max(1, Math.round((iterations * targetMs) / Math.max(t, 1e-3)));
  return iterations;
}

export function timeIt(a: Contender, b: Contender, options: TimeItOptions): TimeItResult {
  const opsPerIteration = options.opsPerIteration ?? 1;
  // Warm both before calibrating either, alternating, so neither enjoys a privileged JIT state.
  warm(a, options.warmupMs / 2);
  warm(b, options.warmupMs / 2);
  const itA = calibrate(a, options.targetMs, options.warmupMs / 2);
  const itB = calibrate(b, options.targetMs, options.warmupMs / 2);
  const msA: number[] = [];
  const msB: number[] = [];
  for (let rep = 0; rep < options.reps; rep++) {
    gc?.();
    msA.push(elapsedMs(a, itA));
    gc?.();
    msB.push(elapsedMs(b, itB));
  }
  const result = (c: Contender, iterations: number, samplesMs: number[]): ContenderResult => {
    const opsPerSec = samplesMs.map((ms) => (iterations * opsPerIteration * 1000) / ms);
    return {
      name: c.name,
      iterations,
      opsPerIteration,
      samplesMs,
      opsPerSec,
      medianOpsPerSec: median(opsPerSec),
    };
  };
  const ra = result(a, itA, msA);
  const rb = result(b, itB, msB);
  return {
    a: ra,
    b: rb,
    ratio: ra.medianOpsPerSec / rb.medianOpsPerSec,
    pairRatios: ra.opsPerSec.map((x, i) => x / rb.opsPerSec[i]),
  };
}
