/**
 * The $SYS/broker topics (the de-facto convention of Mosquitto): retained messages refreshed on an
 * interval, so a subscriber gets the current values at once.
 */
import type { TimerHandle } from '../clock.js';
import type { BrokerStats } from '../observability/stats.js';
import type { Broker } from './broker.js';

export class SysTopics {
  private timer: TimerHandle | undefined;

  constructor(
    private readonly broker: Broker,
    private readonly version: string,
  ) {}

  start(): void {
    const seconds = this.broker.options.sysIntervalSeconds;
    if (seconds <= 0 || this.timer !== undefined) return;
    this.publish();
    this.timer = this.broker.clock.setInterval(() => this.publish(), seconds * 1000);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /**
   * Publishes the current values (also called directly by tests). Single node: under
   * `$SYS/broker/`. Cluster: this node's values under `$SYS/broker/nodes/<nodeId>/`, and the
   * cluster totals under `$SYS/broker/` (written by one node: the live node with the lowest id).
   */
  publish(): void {
    const b = this.broker;
    const s = b.stats;
    const values: [string, string | number][] = [
      ['version', `shoal ${this.version}`],
      ['uptime', `${Math.floor((b.clock.now() - b.startedAt) / 1000)} seconds`],
      ...counted(s),
      ['retained messages/count', s.retained],
    ];
    const cluster = b.clusterBackend;
    if (cluster === undefined) {
      this.write('$SYS/broker/', values);
      return;
    }
    this.write(`$SYS/broker/nodes/${cluster.nodeId}/`, values);
    const mine = Object.fromEntries(counted(s));
    cluster
      .shareStats(mine)
      .then((all) => {
        const ids = Object.keys(all).sort();
        if (ids[0] !== cluster.nodeId) return;
        const totals: Record<string, number> = {};
        for (const id of ids) for (const [k, v] of Object.entries(all[id])) totals[k] = (totals[k] ?? 0) + v;
        this.write('$SYS/broker/', [
          ['version', `shoal ${this.version}`],
          ['cluster/nodes', ids.length],
          ...Object.entries(totals),
          ['retained messages/count', s.retained],
        ]);
      })
      .catch(() => undefined); // Redis away: the next interval tries again.
  }

  private write(prefix: string, values: [string, string | number][]): void {
    for (const [name, value] of values) {
      this.broker.publish({
        topic: prefix + name,
        payload: Buffer.from(String(value)),
        qos: 0,
        retain: true,
      });
    }
  }
}

/** The values that add up over the nodes of a cluster. */
function counted(s: BrokerStats): [string, number][] {
  return [
    ['clients/connected', s.clientsConnected],
    ['clients/total', s.sessions],
    ['messages/received', s.messagesReceived],
    ['messages/sent', s.messagesSent],
    ['bytes/received', s.bytesReceived],
    ['bytes/sent', s.bytesSent],
    ['subscriptions/count', s.subscriptions],
  ];
}
