/**
 * What a node does every heartbeat interval (cluster.heartbeatMs) while Redis is reachable: its
 * heartbeat (found reaped by the others: its clients claim again, the replicas are loaded again and
 * its routes announced again), and the periodic work of the other parts, each on its own (a failure
 * is logged and holds up nothing else): expired sessions and retained messages swept, the sessions
 * marked as served here checked, dead nodes reaped (membership.ts), the due wills of dead nodes
 * published and the kicks for this node drained (wills.ts).
 */
import type { Clock, TimerHandle } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { RedisMembership } from './membership.js';
import type { RedisRetainedStore } from './retained-store.js';
import type { RedisSessionStore } from './session-store.js';
import type { RedisWills } from './wills.js';

export interface TickOptions {
  clock: Clock;
  logger: Logger;
  heartbeatMs: number;
  membership: Pick<RedisMembership, 'heartbeat' | 'reapDead'>;
  sessions: Pick<RedisSessionStore, 'sweep' | 'checkServed'>;
  retained: Pick<RedisRetainedStore, 'sweep'>;
  wills: Pick<RedisWills, 'fireDue' | 'drainKicks'>;
  /** False while Redis is away: nothing is done then. */
  connected(): boolean;
  /** start() finished: a heartbeat before that joins the node set. */
  joined(): boolean;
  /** The snapshot of the replicas, loaded again. */
  resync(): Promise<void>;
  /** This node was reaped: its clients must claim again. */
  stateLost(): void;
  /** Whether a connection (or a CONNECT still claiming) of `clientId` is on this node. */
  serves(clientId: string): boolean;
}

export class HeartbeatTick {
  private timer: TimerHandle | undefined;

  constructor(private readonly o: TickOptions) {}

  start(): void {
    this.timer = this.o.clock.setInterval(() => this.tick(), this.o.heartbeatMs);
  }

  stop(): void {
    this.timer?.cancel();
  }

  /** Its heartbeat; found reaped by the others (true), its clients must claim again. */
  async heartbeat(): Promise<boolean> {
    const reaped = await this.o.membership.heartbeat(this.o.joined());
    if (reaped) this.o.stateLost();
    return reaped;
  }

  private tick(): void {
    const log = this.o.logger;
    if (!this.o.connected()) return;
    this.heartbeat()
      .then((reaped) => (reaped ? this.o.resync() : undefined))
      .catch((err: Error) => log.warn({ event: 'cluster.heartbeat_failed', err: err.message }));
    this.o.sessions
      .sweep()
      .catch((err: Error) => log.warn({ event: 'cluster.session_sweep_failed', err: err.message }));
    this.o.retained
      .sweep()
      .catch((err: Error) => log.warn({ event: 'cluster.retained_sweep_failed', err: err.message }));
    this.o.sessions
      .checkServed((id) => this.o.serves(id))
      .catch((err: Error) => log.warn({ event: 'cluster.session_check_failed', err: err.message }));
    this.o.membership
      .reapDead()
      .catch((err: Error) => log.warn({ event: 'cluster.reap_failed', err: err.message }));
    this.o.wills
      .fireDue()
      .catch((err: Error) => log.warn({ event: 'cluster.will_failed', err: err.message }));
    this.o.wills
      .drainKicks()
      .catch((err: Error) => log.warn({ event: 'cluster.kicks_failed', err: err.message }));
  }
}
