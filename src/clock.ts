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

/** A Node timer as a TimerHandle: one small object (every connection holds one: keep-alive). */
class NodeTimer implements TimerHandle {
  private t: NodeJS.Timeout;

  constructor(
    private readonly fn: () => void,
    ms: number,
  ) {
    this.t = this.arm(ms);
  }

  /** Session expiry and will delay reach 0xFFFFFFFE s (~136 years): chained timers past 24.8 days. */
  private arm(left: number): NodeJS.Timeout {
    const t =
      left > MAX_TIMER_MS
        ? setTimeout(() => {
            this.t = this.arm(left - MAX_TIMER_MS);
          }, MAX_TIMER_MS)
        : setTimeout(this.fn, left);
    t.unref();
    return t;
  }

  cancel(): void {
    clearTimeout(this.t);
  }
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => new NodeTimer(fn, ms),
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};
