/**
 * Graceful drain of a node's connections: clients are disconnected at a bounded rate (MQTT 5:
 * DISCONNECT 0x8B Server shutting down, or 0x9C Use another server with a Server Reference), so the
 * nodes that take them over see a steady stream of reconnects rather than one burst. Connections
 * that have not completed CONNECT are closed at once. Whatever is left at the deadline goes at once.
 */
import type { Clock, TimerHandle } from '../clock.js';
import { ReasonCode } from '../protocol/index.js';

export interface DrainOptions {
  /** Clients disconnected per second; 0 (the default) disconnects all at once. */
  ratePerSecond?: number;
  /** MQTT 5: send DISCONNECT 0x9C (Use another server) with this Server Reference instead of 0x8B. */
  serverReference?: string | null;
  /** Ms after which every remaining client is disconnected at once (default: no deadline). */
  deadlineMs?: number;
}

/** What a drain needs of a connection (the connection layer's `Connection` is one). */
export interface Drainable {
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  readonly channel: { readonly state: string };
  /** Sends DISCONNECT with `reasonCode` (MQTT 5) and closes. */
  shutdown(reasonCode: number, serverReference?: string): void;
}

/** How often a rate-limited drain disconnects its next slice of clients. */
const TICK_MS = 100;

/** Disconnects `connections` as `options` say; resolves once every one is closed. */
export function drainConnections(
  connections: Iterable<Drainable>,
  options: DrainOptions,
  clock: Clock,
): Promise<void> {
  const all = [...connections];
  const closed = Promise.all(all.map((c) => c.closed)).then(() => undefined);
  const reference = options.serverReference ?? undefined;
  const reason = reference === undefined ? ReasonCode.ServerShuttingDown : ReasonCode.UseAnotherServer;
  const close = (c: Drainable) => c.shutdown(reason, reference);

  // Connected clients first in line are the oldest; half-open CONNECTs go now.
  const queue = all.filter((c) => c.channel.state === 'connected');
  for (const c of all) if (c.channel.state !== 'connected') close(c);
  const rate = options.ratePerSecond ?? 0;
  if (rate <= 0 || queue.length === 0) {
    for (const c of queue) close(c);
    return closed;
  }

  const started = clock.now();
  let next = 0;
  let ticker: TimerHandle | undefined;
  let deadline: TimerHandle | undefined;
  const stop = () => {
    ticker?.cancel();
    deadline?.cancel();
  };
  const release = (upTo: number) => {
    for (; next < upTo && next < queue.length; next++) close(queue[next]);
    if (next >= queue.length) stop();
  };
  // One slice now, then as many as the rate allows for the time elapsed.
  release(Math.max(1, Math.floor((rate * TICK_MS) / 1000)));
  if (next < queue.length) {
    ticker = clock.setInterval(() => {
      release(Math.floor((rate * (clock.now() - started + TICK_MS)) / 1000));
    }, TICK_MS);
    if (options.deadlineMs !== undefined)
      deadline = clock.setTimeout(() => release(queue.length), Math.max(0, options.deadlineMs));
  }
  return closed;
}
