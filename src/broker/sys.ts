/**
 * The $SYS/broker topics (the de-facto convention of Mosquitto): retained messages refreshed on an
 * interval, so a subscriber gets the current values at once.
 */
import type { TimerHandle } from '../clock.js';
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

  /** Publishes the current values (also called directly by tests). */
  publish(): void {
    const b = this.broker;
    const s = b.stats;
    const values: [string, string | number][] = [
      ['version', `shoal ${this.version}`],
      ['uptime', `${Math.floor((b.clock.now() - b.startedAt) / 1000)} seconds`],
      ['clients/connected', s.clientsConnected],
      ['clients/total', s.sessions],
      ['messages/received', s.messagesReceived],
      ['messages/sent', s.messagesSent],
      ['bytes/received', s.bytesReceived],
      ['bytes/sent', s.bytesSent],
      ['subscriptions/count', s.subscriptions],
      ['retained messages/count', s.retained],
    ];
    for (const [name, value] of values) {
      b.publish({ topic: `$SYS/broker/${name}`, payload: Buffer.from(String(value)), qos: 0, retain: true });
    }
  }
}
