/**
 * The outbound window of one connection: how many QoS 1/2 messages may be in flight to its client.
 * A fixed window caps a client at window / round trip (100 messages per 5 ms is 20 k msg/s, per
 * 20 ms 5 k), so it adapts: it starts at `initial`, doubles each time a whole window is
 * acknowledged while it was the limit (the acknowledgements keep pace), never passes `ceiling`
 * (the client's Receive Maximum and the broker's maxInflightMessages) nor, counted in bytes,
 * `maxBytes` (so a client that stops acknowledging holds a bounded amount of memory), and falls back
 * to `initial` when acknowledgements stop for STALL_MS. Pure: time comes from the caller.
 */

/** An acknowledgement later than this after the previous one (with the window full): the client stalled. */
export const STALL_MS = 1000;

/** What an in-flight message costs against the byte budget: its payload, topic and bookkeeping. */
export function inflightCost(payloadBytes: number, topicLength: number): number {
  return payloadBytes + topicLength + 128;
}

export class SendWindow {
  /** Messages that may be in flight now (the window, or what is in flight while over the byte budget). */
  limit: number;
  /** Bytes in flight (inflightCost of each message sent and not yet acknowledged). */
  bytes = 0;
  private window: number;
  private ackedInWindow = 0;
  private lastAck: number;
  /**
   * The last send filled the window. A burst of acknowledgements read at once then counts as
   * acknowledged with the window full, although what is in flight drops with each: a session that
   * refills asynchronously (a stored session fetching from Redis) refills only after the burst, and
   * its window would never grow (#13.5).
   */
  private saturated = false;

  constructor(
    private readonly initial: number,
    private readonly ceiling: number,
    private readonly maxBytes: number,
    now: number,
  ) {
    this.window = Math.max(1, Math.min(initial, ceiling));
    this.limit = this.window;
    this.lastAck = now;
  }

  /** The window itself (limit is lower while the byte budget is spent). */
  get size(): number {
    return this.window;
  }

  /** A message of `cost` went out; `inflight`: messages in flight now, it included. */
  sent(cost: number, inflight: number): void {
    this.bytes += cost;
    if (this.bytes >= this.maxBytes) this.limit = Math.min(this.window, inflight);
    this.saturated = inflight >= this.limit;
  }

  /**
   * A message of `cost` was acknowledged; `inflight`: messages still in flight after it. It counts
   * towards growth when the window was full: as many in flight as the limit allowed before it, or
   * the last send filled the window (the client could take more than it was given).
   */
  acknowledged(cost: number, inflight: number, now: number): void {
    const full = inflight + 1 >= this.limit || this.saturated;
    this.bytes = Math.max(0, this.bytes - cost);
    const stalled = now - this.lastAck >= STALL_MS;
    // Held by the byte budget, not by the window: a bigger window would not send more.
    const byteBound = this.limit < this.window;
    this.lastAck = now;
    if (stalled && full) {
      // The client stopped for a while: start again from the initial window.
      this.window = Math.max(1, Math.min(this.initial, this.ceiling));
      this.ackedInWindow = 0;
      this.saturated = false;
    } else if (full && !byteBound && this.window < this.ceiling) {
      if (++this.ackedInWindow >= this.window) {
        this.ackedInWindow = 0;
        this.window = Math.min(this.ceiling, this.window * 2);
        this.saturated = false;
      }
    }
    this.limit = this.bytes >= this.maxBytes ? Math.min(this.window, inflight) : this.window;
  }
}

/** A window for a client whose Receive Maximum is `receiveMaximum` (65535 when it sets none). */
export function sendWindow(
  o: { initialInflightMessages: number; maxInflightMessages: number; maxInflightBytes: number },
  receiveMaximum: number,
  now: number,
): SendWindow {
  const ceiling = Math.min(receiveMaximum, o.maxInflightMessages);
  return new SendWindow(o.initialInflightMessages, ceiling, o.maxInflightBytes, now);
}
