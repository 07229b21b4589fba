/**
 * The control channel of each node (pub/sub, sharded on Redis Cluster): takeover requests and their
 * answers (ownership.ts), and pokes for the persistent sessions served here. Pub/sub loses what is
 * sent while a connection is down: a takeover's kick is also made durably (the kick list, wills.ts),
 * and after the pub/sub connection comes back every session served here fetches (backend.ts).
 */
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';

export interface ControlOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  sharded: boolean;
  /** A takeover request: close the local connection of `clientId` if it is older than `epoch`. */
  release(clientId: string, epoch: number): void;
  /** The former owner answered a takeover request this node sent. */
  released(clientId: unknown, epoch: unknown): void;
  /** Messages were queued for these persistent sessions, served here: fetch them. */
  poke(clientIds: string[]): void;
}

export class ControlChannel {
  constructor(private readonly o: ControlOptions) {}

  /** This node's own control channel (it listens to it). */
  get channel(): string {
    return this.o.keys.control(this.o.nodeId);
  }

  send(node: string, msg: Record<string, unknown>): void {
    const channel = this.o.keys.control(node);
    const body = JSON.stringify(msg);
    const sent = this.o.sharded ? this.o.cmd.spublish(channel, body) : this.o.cmd.publish(channel, body);
    sent.catch(() => undefined);
  }

  /** The control channel: takeover requests and answers, pokes for the sessions served here. */
  receive(raw: Buffer): void {
    let msg: { t?: string; c?: unknown; e?: number; f?: string };
    try {
      msg = JSON.parse(raw.toString());
    } catch {
      return;
    }
    if (
      msg.t === 'kick' &&
      typeof msg.c === 'string' &&
      typeof msg.e === 'number' &&
      typeof msg.f === 'string'
    ) {
      this.o.release(msg.c, msg.e);
      this.send(msg.f, { t: 'released', c: msg.c, e: msg.e });
    } else if (msg.t === 'poke' && Array.isArray(msg.c)) {
      this.o.poke(msg.c.filter((c): c is string => typeof c === 'string'));
    } else if (msg.t === 'released') {
      this.o.released(msg.c, msg.e);
    }
  }
}
