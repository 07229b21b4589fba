/**
 * Ownership of client ids across nodes: the claim (owner hash with a fencing epoch, loading or
 * discarding the stored session in the same script) and the takeover request to the former owner.
 */
import type { Clock } from '../../clock.js';
import type { Claim, StoredWill } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { withTimeout } from './redis-util.js';
import { scripts } from './scripts.js';
import { decodeStoredSession, type RedisSessionStore } from './session-store.js';

export interface OwnershipOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  clock: Clock;
  livenessMs: number;
  sessions: RedisSessionStore;
  /** This process's run: claims are named by it, so a claim ioredis re-sends is recognised. */
  run: string;
  /** This node's incarnation, stored with each claim: a reaper of an earlier one leaves it alone. */
  incarnation(): string;
  connected(): boolean;
  /** False when `node` is dead: a takeover need not wait for its answer. */
  mayAnswer(node: string): Promise<boolean>;
  sendControl(node: string, msg: Record<string, unknown>): void;
  /** The durable kick (a list the node drains each tick): pub/sub may lose the control message. */
  kick(node: string, clientId: string, epoch: number): void;
  /** A claim that ran after its caller gave up on it took the previous connection's will: publish it. */
  lateWill(will: StoredWill): void;
  /** cluster.replicaAcks: resolves once Redis replicas hold the writes made so far to `key`'s slot. */
  replicated?: (key: string) => Promise<void>;
  decodeWill(buf: Buffer): StoredWill;
}

export class RedisOwnership {
  /** Takeover requests this node sent and waits an answer for: `clientId\nepoch` -> resolve. */
  private readonly releaseWaiters = new Map<string, () => void>();
  private claims = 0;

  constructor(private readonly o: OwnershipOptions) {}

  async claim(clientId: string, clean: boolean, expirySeconds = 0): Promise<Claim> {
    // While Redis is away no claim can be made: refuse at once rather than let the client wait.
    if (!this.o.connected()) throw new Error('Redis is not reachable');
    const k = this.o.keys;
    const persistent = !clean || expirySeconds > 0;
    if (persistent) await this.o.sessions.serving(clientId);
    const running = scripts.ownerClaim.run(
      this.o.cmd,
      [
        k.owner(clientId),
        k.session(clientId),
        k.queue(clientId),
        k.inflight(clientId),
        k.awaitingRelease(clientId),
      ],
      this.o.nodeId,
      clean ? '1' : '0',
      String(expirySeconds),
      `${this.o.nodeId}/${this.o.run}/${++this.claims}`,
      this.o.incarnation(),
    );
    const [previous, epoch, will, discarded, present, fields, inflight, rel] = await withTimeout(
      running,
      this.o.livenessMs,
    ).catch((err: Error) => {
      // Timed out, but the script may still run: whatever it took must not be lost. Its will goes
      // out (that connection was taken over), its former owner is told, the claimed session (no
      // connection here) is taken offline by the node's check of its served sessions.
      running.then(
        ([late, lateEpoch, lateWill]) => {
          if (lateWill !== null) this.o.lateWill(this.o.decodeWill(lateWill));
          if (late !== null && late.toString() !== this.o.nodeId)
            this.o.kick(late.toString(), clientId, Number(lateEpoch));
        },
        () => undefined,
      );
      throw err;
    });
    // Clean Start ended a stored session, or a new one starts where an expired one may have left
    // routes the sweep has not dropped yet: they go before CONNACK, so none outlives its session.
    if (discarded === 1 || (present === 0 && expirySeconds > 0))
      await this.o.sessions.dropRoutes(clientId, Number(epoch));
    const claim: Claim = {
      epoch: Number(epoch),
      previous: previous ? previous.toString() : null,
      will: will ? this.o.decodeWill(will) : null,
      discarded: discarded === 1,
    };
    if (present === 1 || expirySeconds > 0)
      claim.session = decodeStoredSession(present, fields, inflight, rel);
    else if (persistent) this.o.sessions.notServing(clientId);
    // cluster.replicaAcks: no CONNACK on a claim a failover could undo (its epoch handed out again,
    // the will it stores fenced out). Refused as a timed-out claim is: what it took goes on.
    if (this.o.replicated !== undefined) {
      await this.o.replicated(k.owner(clientId)).catch((err: Error) => {
        if (claim.will !== null) this.o.lateWill(claim.will);
        if (claim.previous !== null && claim.previous !== this.o.nodeId)
          this.o.kick(claim.previous, clientId, claim.epoch);
        throw new Error(`the claim was not replicated: ${err.message}`);
      });
    }
    return claim;
  }

  /**
   * The connection `epoch` of `clientId` ended and keeps no session in Redis: its owner hash gets a
   * TTL (owner-release.lua; a claim makes it persistent again). Fenced: a later claim's hash is kept.
   */
  async release(clientId: string, epoch: number): Promise<void> {
    const k = this.o.keys;
    await scripts.ownerRelease.run(
      this.o.cmd,
      [k.owner(clientId), k.session(clientId)],
      String(epoch),
      this.o.nodeId,
    );
  }

  async requestRelease(node: string, clientId: string, epoch: number): Promise<void> {
    if (node === this.o.nodeId) return;
    this.o.kick(node, clientId, epoch);
    if (!(await this.o.mayAnswer(node))) return; // dead: nothing to wait for
    const key = `${clientId}\n${epoch}`;
    await new Promise<void>((resolve) => {
      // Bounded by the liveness timeout: a node that does not answer is fenced out by the epoch anyway.
      const timer = this.o.clock.setTimeout(() => {
        this.releaseWaiters.delete(key);
        resolve();
      }, this.o.livenessMs);
      this.releaseWaiters.set(key, () => {
        timer.cancel();
        this.releaseWaiters.delete(key);
        resolve();
      });
      this.o.sendControl(node, { t: 'kick', c: clientId, e: epoch, f: this.o.nodeId });
    });
  }

  /** The former owner answered a takeover request. */
  released(clientId: unknown, epoch: unknown): void {
    this.releaseWaiters.get(`${clientId}\n${epoch}`)?.();
  }

  /** The node leaves: nobody waits for an answer any more. */
  stop(): void {
    for (const resolve of this.releaseWaiters.values()) resolve();
  }
}
