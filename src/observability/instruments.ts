/**
 * Measurements that are distributions rather than totals (durations, sizes, lags). Code that makes
 * them calls this narrow interface; metrics.ts implements it with prom-client histograms, and a
 * component built without one (tests, embedding) measures nothing. Counters and gauges do not come
 * through here: they are plain numbers in BrokerStats, read at scrape time.
 */
export interface Instruments {
  /** One Redis command of the node's command connection: its name, seconds until the reply, failed or not. */
  redisCommand(command: string, seconds: number, failed: boolean): void;
  /** One batch sent to another node's inbox: `durable` (stream, QoS >= 1) or not (pub/sub, QoS 0). */
  clusterBatch(durable: boolean, envelopes: number): void;
  /** Age of an inbox batch when this node read it, in seconds (now minus its stream id's time). */
  inboxLag(seconds: number): void;
  /** A session taken over by a new connection: seconds from the claim to the old connection's release. */
  takeover(seconds: number): void;
  /** One commit of a single node's data dir: seconds to write and fsync it, the changes it held, failed or not. */
  persistenceCommit(seconds: number, writes: number, failed: boolean): void;
}

export const noInstruments: Instruments = {
  redisCommand: () => undefined,
  clusterBatch: () => undefined,
  inboxLag: () => undefined,
  takeover: () => undefined,
  persistenceCommit: () => undefined,
};
