/** What the runner and the load worker processes say to each other over the IPC channel. */

export interface PublisherSpec {
  clientId: string;
  topic: string;
  qos: 0 | 1;
  payloadSize: number;
  /**
   * flood: QoS 0, batches of `batch` pre-encoded packets as fast as the socket drains;
   * window: QoS 1, at most `window` unacknowledged, each PUBACK lets one more go;
   * paced: a fixed `rate` (msg/s) in timer-driven batches every `tickMs`, each stamped with
   *        process.hrtime.bigint() in the first 8 payload bytes.
   */
  mode: 'flood' | 'window' | 'paced';
  batch?: number;
  window?: number;
  rate?: number;
  tickMs?: number;
}

export interface SubscriberSpec {
  clientId: string;
  filter: string;
  qos: 0 | 1;
  /** Read the timestamp in each payload and record latency (same process as the paced publisher). */
  latency: boolean;
  /** Connect with Clean Session 0: a persistent session. */
  persistent?: boolean;
  /**
   * QoS 1: send the PUBACKs for what a read brought this many ms later (a consumer a few ms away,
   * or one that reads its socket on a timer); 0 at once.
   */
  ackDelayMs?: number;
}

export interface IdleSpec {
  count: number;
  clientIdPrefix: string;
  /** Source addresses to spread connections over (bind localAddress); empty = let the kernel choose. */
  localAddresses: string[];
  /**
   * With localAddresses: the source ports to use, [first, last], counted up per address. Explicit,
   * because bind() to an address with port 0 takes a port from the one shared ephemeral range and
   * would give no more connections than no bind at all. A port in use (EADDRINUSE) is skipped.
   */
  localPorts?: [number, number];
  /** Connection attempts in flight at once. */
  concurrency: number;
  timeoutMs: number;
}

export interface Job {
  host: string;
  port: number;
  /** Subscribers connect here instead of `port` (cluster scenarios: publishers on one node, subscribers on another). */
  subscriberPort?: number;
  publishers: PublisherSpec[];
  subscribers: SubscriberSpec[];
  idle?: IdleSpec;
  setupTimeoutMs: number;
}

export type ToWorker =
  | { type: 'job'; job: Job }
  | {
      type: 'start';
      warmupMs: number;
      durationMs: number;
      tailMs: number;
      /**
       * After the publishers stop, wait until received and acknowledged counts have not moved for
       * 1 s (at most this long) before reporting receivedTotal/ackedTotal: what was still in
       * flight is counted, so totals can be compared for loss. 0 or absent: report at once.
       */
      drainMs?: number;
      /** Record received counts every this many ms from start (LoadResult.timeline). */
      timelineMs?: number;
    }
  | { type: 'exit' };

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Samples beyond the recording buffer (not in the percentiles). */
  overflow: number;
}

export interface LoadResult {
  /** Length of the measurement window as this worker timed it. */
  windowMs: number;
  /** PUBLISH packets received by this worker's subscribers inside the window. */
  received: number;
  /** Per subscriber, inside the window (fan-out fairness). */
  perSubscriber: number[];
  /** PUBLISH packets handed to the sockets by this worker's publishers inside the window. */
  sent: number;
  /** PUBACKs received by this worker's QoS 1 publishers inside the window. */
  acked: number;
  /** Whole run, warm-up and tail included. */
  receivedTotal: number;
  sentTotal: number;
  /** PUBACKs received by this worker's publishers over the whole run (after the drain, if any). */
  ackedTotal?: number;
  /** With timelineMs: messages received in each interval from start (stalls show as zeros). */
  timeline?: number[];
  /** How long the drain took (ms), with drainMs. */
  drainedMs?: number;
  /** Paced publishers: batches skipped because the socket had more than 4 MB queued. */
  skipped: number;
  latency?: LatencySummary;
  /** This worker's CPU time (user + system) inside the window, in ms, and the system part. */
  cpuMs: number;
  cpuSystemMs: number;
  unexpectedCloses: number;
  errors: string[];
}

export interface IdleResult {
  opened: number;
  failed: number;
  /** process.hrtime (CLOCK_MONOTONIC, comparable across processes) in ms. */
  firstAttemptMs: number;
  lastConnackMs: number;
  /** Slowest single connection (TCP connect to CONNACK), ms: above ~1000 means SYN retransmits. */
  maxConnectMs: number;
  /** Connections that took longer than one second. */
  slowConnects: number;
  errors: string[];
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'result'; result: LoadResult }
  | { type: 'idle-done'; result: IdleResult }
  | { type: 'status'; unexpectedCloses: number; errors: string[] }
  | { type: 'failed'; message: string };
