/**
 * The control channel of each node (pub/sub, sharded on Redis Cluster): takeover requests and their
 * answers (ownership.ts), pokes for the persistent sessions served here, and admin API requests one
 * node asks another to serve (call(): a request id, answered on the asker's channel, bounded by a
 * timeout). Pub/sub loses what is
 * sent while a connection is down: a takeover's kick is also made durably (the kick list, wills.ts),
 * and after the pub/sub connection comes back every session served here fetches (backend.ts).
 */
import type { Clock } from '../../clock.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';

/** How long an admin request to another node waits for its answer. */
const CALL_TIMEOUT_MS = 3000;

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
  clock: Clock;
  /** Serves an admin request another node sent (the admin API's cluster-wide calls). */
  serve?(request: unknown): Promise<unknown>;
}

export class ControlChannel {
  /** Admin requests sent and not answered yet, by id. */
  private readonly calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private nextCall = 0;
  /** Set once the broker is up (the admin API's server side). */
  serve: ((request: unknown) => Promise<unknown>) | undefined;

  constructor(private readonly o: ControlOptions) {
    this.serve = o.serve;
  }

  /** Asks `node` to serve an admin request; rejects when it does not answer in time (gone, cut off). */
  call(node: string, request: unknown): Promise<unknown> {
    const id = ++this.nextCall;
    return new Promise((resolve, reject) => {
      const timer = this.o.clock.setTimeout(() => {
        this.calls.delete(id);
        reject(new Error(`node ${node} did not answer within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.calls.set(id, {
        resolve: (v) => {
          timer.cancel();
          resolve(v);
        },
        reject: (e) => {
          timer.cancel();
          reject(e);
        },
      });
      this.send(node, { t: 'admin', i: id, f: this.o.nodeId, r: request });
    });
  }

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
    let msg: {
      t?: string;
      c?: unknown;
      e?: number | string;
      f?: string;
      i?: number;
      r?: unknown;
      v?: unknown;
    };
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
    } else if (msg.t === 'admin' && typeof msg.i === 'number' && typeof msg.f === 'string') {
      const { i, f } = msg;
      const served =
        this.serve?.(msg.r) ?? Promise.reject(new Error('this node serves no admin requests yet'));
      served.then(
        (v) => this.send(f, { t: 'admin-ok', i, v }),
        (err: Error) => this.send(f, { t: 'admin-err', i, e: err.message }),
      );
    } else if ((msg.t === 'admin-ok' || msg.t === 'admin-err') && typeof msg.i === 'number') {
      const call = this.calls.get(msg.i);
      if (call === undefined) return; // answered after its timeout
      this.calls.delete(msg.i);
      if (msg.t === 'admin-ok') call.resolve(msg.v);
      else call.reject(new Error(String(msg.e)));
    }
  }
}
