/**
 * A counting latch for one message: each step the message waits for (a Redis write, a congested
 * subscriber) takes a hold; `done` runs, with the first error if any, when the last hold is released
 * and the owner has released its own.
 */
export type Hold = () => (err?: Error) => void;

export class Latch {
  private pending = 1;
  private failure: Error | undefined;

  constructor(private readonly done: (err?: Error) => void) {}

  /** Takes a hold; call what it returns exactly once. */
  readonly hold: Hold = () => {
    this.pending++;
    return this.release;
  };

  /** Releases one hold (the owner's own, when it is done taking them). */
  readonly release = (err?: Error): void => {
    if (err !== undefined) this.failure ??= err;
    if (--this.pending === 0) this.done(this.failure);
  };

  /** Whether holds other than the owner's are still taken. */
  get waiting(): boolean {
    return this.pending > 1;
  }
}
