/**
 * Time as a dependency: keep-alive, session expiry, will delay and message expiry read the clock
 * through this interface so tests drive time exactly (see test/helpers/fake-clock.ts).
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds, monotonic enough for timeouts (Date.now in production). */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
}

/** Node timers hold at most 2^31-1 ms and fire after 1 ms when asked for more. */
const MAX_TIMER_MS = 0x7fffffff;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    // Session expiry and will delay reach 0xFFFFFFFE s (~136 years): chain timers past 24.8 days.
    let t: NodeJS.Timeout;
    const arm = (left: number): void => {
      t =
        left > MAX_TIMER_MS ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS) : setTimeout(fn, left);
      t.unref();
    };
    arm(ms);
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};
