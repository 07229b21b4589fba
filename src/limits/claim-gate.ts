/**
 * Admission control for CONNECT (#13.7): at most `maxRunning` claims of a client id run at once on
 * this node, the rest wait in a first-come queue of at most `maxWaiting`, and none waits longer than
 * `waitTimeoutMs` for its turn. A CONNECT past the queue, or one whose wait ran out, is told to come
 * back (the channel answers CONNACK 0x89 Server busy; 3.x: 3 Server unavailable) instead of piling
 * claims onto Redis until its commands time out and its heartbeats starve. A reconnect storm of
 * 10,000 clients thus reaches Redis as `maxRunning` claims at a time, and the clients refused retry.
 *
 * Pure apart from the injected clock: one timer, for the head of the queue, bounds every wait.
 */
import type { Clock, TimerHandle } from '../clock.js';

export interface ClaimGateOptions {
  /** Claims running at once; 0 = no limit (the gate lets everything through). */
  maxRunning: number;
  /** CONNECTs waiting for a running slot; beyond it a CONNECT is refused at once. */
  maxWaiting: number;
  /** The longest a CONNECT waits for its slot before it is refused. */
  waitTimeoutMs: number;
}

/** Why the gate refused a CONNECT: its queue was full, or its wait ran out (counted in `refused`). */
export type ClaimRefusal = 'queue_full' | 'queue_timeout';

/** The gate refused: the client should come back later (CONNACK 0x89). */
export class ClaimRefused extends Error {
  /** `cancelled`: the connection closed while it waited (nobody is told). */
  constructor(readonly why: ClaimRefusal | 'cancelled') {
    super(
      why === 'queue_full'
        ? 'too many CONNECTs waiting to claim'
        : why === 'queue_timeout'
          ? 'waited too long to claim'
          : 'the connection closed while it waited to claim',
    );
    this.name = 'ClaimRefused';
  }
}

interface Waiter {
  readonly since: number;
  readonly start: () => void;
  readonly refuse: (err: ClaimRefused) => void;
}

export class ClaimGate {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  /** Index of the queue's head in `waiting` (shifting a long array per dequeue is quadratic). */
  private head = 0;
  private timer: TimerHandle | undefined;
  /** CONNECTs refused since start, by why. */
  readonly refused: Record<ClaimRefusal, number> = { queue_full: 0, queue_timeout: 0 };

  constructor(
    private readonly o: Readonly<ClaimGateOptions>,
    private readonly clock: Clock,
  ) {}

  /** Claims running now. */
  get active(): number {
    return this.running;
  }

  /** CONNECTs waiting for their turn now. */
  get queued(): number {
    return this.waiting.length - this.head;
  }

  /**
   * Runs `claim` once a slot is free and settles as it does; rejects with ClaimRefused when the
   * queue is full or the wait runs out (`claim` then never runs). `cancelled`, asked when the turn
   * comes, skips a CONNECT whose connection closed while it waited.
   */
  run<T>(claim: () => Promise<T>, cancelled: () => boolean = () => false): Promise<T> {
    if (this.o.maxRunning === 0) return claim();
    // The common case, a free slot and nobody waiting: no promise or closure of the gate's own.
    if (this.running < this.o.maxRunning && this.queued === 0) return this.start(claim);
    if (this.queued >= this.o.maxWaiting) {
      this.refused.queue_full++;
      return Promise.reject(new ClaimRefused('queue_full'));
    }
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        if (cancelled()) reject(new ClaimRefused('cancelled'));
        else this.start(claim).then(resolve, reject);
      };
      this.waiting.push({ since: this.clock.now(), start, refuse: reject });
      // A later arrival never ends first: the head's timer covers it.
      if (this.timer === undefined) this.armTimer();
    });
  }

  /** Runs `claim` in a slot; the slot is free again once it settles, either way. */
  private start<T>(claim: () => Promise<T>): Promise<T> {
    this.running++;
    let claimed: Promise<T>;
    try {
      claimed = claim();
    } catch (err) {
      this.finished();
      return Promise.reject(err);
    }
    claimed.then(this.finished, this.finished);
    return claimed;
  }

  private readonly finished = (): void => {
    this.running--;
    this.next();
  };

  /** Starts waiters while slots are free, after refusing those whose wait ran out. */
  private next(): void {
    this.expire();
    while (this.running < this.o.maxRunning && this.queued > 0) this.take().start();
    this.armTimer();
  }

  private take(): Waiter {
    const w = this.waiting[this.head++];
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    return w;
  }

  private expire(): void {
    const oldest = this.clock.now() - this.o.waitTimeoutMs;
    while (this.queued > 0 && this.waiting[this.head].since <= oldest) {
      this.refused.queue_timeout++;
      this.take().refuse(new ClaimRefused('queue_timeout'));
    }
  }

  /** One timer, for the head's deadline: the queue is in arrival order, so it ends first. */
  private armTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.queued === 0) return;
    const due = this.waiting[this.head].since + this.o.waitTimeoutMs - this.clock.now();
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.next();
      },
      Math.max(0, due),
    );
  }
}
