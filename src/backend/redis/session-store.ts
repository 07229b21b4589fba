/**
 * Persistent sessions in Redis (docs/cluster.md "Persistent sessions"). Per session, in one
 * `{clientId}` slot: a hash (serving node, expiry, fetch position, packet-id counter, subscriptions),
 * a stream (the queue), a hash of in-flight packet ids and a set of inbound QoS 2 ids. Publishers
 * append to the stream from any node and poke the serving node, which fetches as the client's window
 * allows. Writes of the serving node are fenced by its epoch (lua/include/fence.lua), batched per
 * session and loop turn; Redis key expiry ends offline sessions, and a sweep drops the routes of
 * ended ones.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Delivery, SubscriptionOptions } from '../../message.js';
import type { Logger } from '../../observability/logger.js';
import { decodeDelivery, encodeDelivery } from '../record.js';
import type { RouteReplica } from '../route-replica.js';
import {
  type ClusterHandlers,
  FencedError,
  type FetchedDelivery,
  type SessionStore,
  type StoredSession,
} from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { type SessionKeys, scripts } from './scripts.js';

/** Session Expiry Interval 0xFFFFFFFF: the session never expires. */
const NEVER = 0xffffffff;
/** How often congested session queues are looked at (flow control). */
const DRAIN_POLL_MS = 5;

/** cluster.replicaAcks: a session change no replica confirmed is made again this often at most (~1 min). */
const OPS_REPLICATION_RETRIES = 48;
const OPS_RETRY_MS = 250;
/** Sessions of a dead node reaped side by side (one SSCAN page): their commands share round trips. */
const REAP_BATCH = 500;

interface PendingAppends {
  /** (record, qos, flow control, dedupe id) quadruples, as session-append.lua takes them. */
  args: (Buffer | string)[];
  accepted: (((err?: Error) => void) | undefined)[];
}

interface PendingOps {
  epoch: number;
  args: string[];
  waiters: { resolve: () => void; reject: (err: Error) => void }[];
  /** Packet ids in the last triple when it is an `A` (a run of acknowledgements), else 0. */
  acks: number;
}

/** Acknowledgements packed into one `A` triple at most (session-ops.lua splits the list). */
const ACKS_PER_TRIPLE = 1000;

export interface RedisSessionStoreOptions {
  redis: RedisClient;
  keys: Keys;
  nodeId: string;
  replica: RouteReplica;
  clock: Clock;
  logger: Logger;
  /** Messages a session's queue holds at most (broker option maxQueuedMessages). */
  maxQueued: number;
  logMaxLen: number;
  /** The broker's callbacks (set once the backend started). */
  handlers: () => ClusterHandlers | undefined;
  /** Sends a control message to another node. */
  sendControl: (node: string, msg: Record<string, unknown>) => void;
  /** cluster.replicaAcks: an append counts as accepted once Redis replicas hold it (RedisBus). */
  replicated?: (key: string) => Promise<void>;
  /** Resolves once every live node applied partition p's route-log entry `id` (guarantee 8). */
  routeApplied?: (p: number, id: string) => Promise<void>;
}

export class RedisSessionStore implements SessionStore {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly nodeId: string;
  private expired = 0;
  private ops = new Map<string, PendingOps>();
  private pokes = new Map<string, Set<string>>();
  private appends = new Map<string, PendingAppends>();
  /** Publishers' acknowledgements waiting for a congested session queue to drain, by client id. */
  private readonly draining = new Map<string, (() => void)[]>();
  private closed = false;
  /** This process's run and its append batches so far: a re-sent batch is recognised by them. */
  private readonly run = randomBytes(6).toString('hex');
  private batches = 0;
  /** Where checkServed goes on in this node's index. */
  private servedCursor = '0';
  private flushScheduled = false;
  /** Writes not yet answered, awaited before the node leaves (drain). */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly o: RedisSessionStoreOptions) {
    this.redis = o.redis;
    this.keys = o.keys;
    this.nodeId = o.nodeId;
  }

  private sessionKeys(clientId: string): SessionKeys {
    const k = this.keys;
    return [
      k.owner(clientId),
      k.session(clientId),
      k.queue(clientId),
      k.inflight(clientId),
      k.awaitingRelease(clientId),
    ];
  }

  matchSessions(
    topic: string,
    visit: (clientId: string, options: SubscriptionOptions, filter: string) => void,
  ): void {
    this.o.replica.matchSessions(topic, visit);
  }

  // ---- publisher side ----------------------------------------------------------------------------

  append(clientId: string, delivery: Delivery, accepted?: (err?: Error) => void): void {
    let batch = this.appends.get(clientId);
    if (batch === undefined) {
      batch = { args: [], accepted: [] };
      this.appends.set(clientId, batch);
    }
    // Encoded now: the payload may be a view of a buffer the connection reuses.
    batch.args.push(
      encodeDelivery(delivery),
      String(delivery.qos),
      accepted === undefined ? '0' : '1',
      delivery.message.dedupe ?? '',
    );
    batch.accepted.push(accepted);
    this.schedule();
  }

  /** One script per session and loop turn for the deliveries queued for it. */
  private flushAppends(clientId: string, batch: PendingAppends): void {
    const k = this.keys;
    const settle = (i: number, err?: Error) => batch.accepted[i]?.(err);
    scripts.sessionAppend
      .run(
        this.redis,
        [
          k.session(clientId),
          k.queue(clientId),
          k.dedupe(clientId),
          k.appliedBatches(clientId),
          k.inflight(clientId),
        ],
        this.o.maxQueued,
        this.nodeId,
        this.run,
        ++this.batches,
        ...batch.args,
      )
      .then(
        (reply) => {
          const [node, ...results] = Array.isArray(reply) ? reply : [];
          if (!Buffer.isBuffer(node)) {
            // The session ended (its routes are being dropped): nothing to queue, nothing lost.
            for (let i = 0; i < batch.accepted.length; i++) settle(i);
            return;
          }
          if (node.length > 0) this.poke(node.toString(), clientId);
          const replicated = this.o.replicated;
          for (let i = 0; i < batch.accepted.length; i++) {
            const result = Number(results[i]);
            if (result === -1) this.o.handlers()?.dropped('queue_full', clientId);
            else if (result === -3) this.o.handlers()?.dropped('offline_qos0', clientId);
            const accepted = batch.accepted[i];
            if (accepted === undefined) continue;
            const release =
              result === 2 ? (err?: Error) => this.whenDrained(clientId, () => accepted(err)) : accepted;
            if (replicated !== undefined && result > 0)
              replicated(k.queue(clientId)).then(() => release(), release);
            else release();
          }
        },
        (err: Error) => {
          for (let i = 0; i < batch.accepted.length; i++) settle(i, err);
        },
      );
  }

  /**
   * Flow control: calls `release` once the session's backlog (queued, not yet taken by its node)
   * is down to a quarter of its limit, or the session went offline (an offline queue fills and
   * drops instead). Polled every few milliseconds, three commands per waiting session (the queue
   * may be served by any node).
   */
  private whenDrained(clientId: string, release: () => void): void {
    const waiting = this.draining.get(clientId);
    if (waiting !== undefined) {
      waiting.push(release);
      return;
    }
    this.draining.set(clientId, [release]);
    if (this.draining.size === 1) this.o.clock.setTimeout(() => this.pollDrained(), DRAIN_POLL_MS);
  }

  private pollDrained(): void {
    if (this.closed) return;
    const ids = [...this.draining.keys()];
    const mark = Math.max(8, this.o.maxQueued >> 1) >> 1;
    const again = () => {
      if (this.draining.size > 0) this.o.clock.setTimeout(() => this.pollDrained(), DRAIN_POLL_MS);
    };
    // Three commands per session (auto-pipelined): on Redis Cluster each session has its own slot.
    // The backlog is what the serving node has not taken yet: the queue less what is in flight.
    const looks = ids.map((id) =>
      Promise.all([
        this.redis.xlen(this.keys.queue(id)),
        this.redis.hlen(this.keys.inflight(id)),
        this.redis.hget(this.keys.session(id), 'on'),
      ]),
    );
    Promise.all(looks).then((answers) => {
      for (let i = 0; i < ids.length; i++) {
        const [length, held, on] = answers[i];
        if (length - held > mark && on !== null && on !== '') continue;
        const waiters = this.draining.get(ids[i]) ?? [];
        this.draining.delete(ids[i]);
        for (const release of waiters) release();
      }
      again();
    }, again);
  }

  private poke(node: string, clientId: string): void {
    let set = this.pokes.get(node);
    if (set === undefined) {
      set = new Set();
      this.pokes.set(node, set);
    }
    set.add(clientId);
    this.schedule();
  }

  // ---- serving node ------------------------------------------------------------------------------

  async fetch(clientId: string, epoch: number, max: number, after: string): Promise<FetchedDelivery[]> {
    const [owner, session, queue, inflight] = this.sessionKeys(clientId);
    const reply = await this.track(
      scripts.sessionFetch.run(this.redis, [owner, session, queue, inflight], epoch, this.nodeId, max, after),
    );
    if (!Array.isArray(reply)) {
      this.fencedOut(clientId, epoch);
      return [];
    }
    // cluster.replicaAcks: nothing is sent before a replica holds its packet id. Else, after a
    // failover lost this fetch, the same entries are taken again under other ids and sent twice (a
    // QoS 2 message delivered twice). Without a replica answering the fetch fails and is made again
    // from the same position (DurableQueue): Redis hands over what it took, with the same ids, or,
    // rolled back, takes it again. A stall while no replica answers beats a duplicate.
    if (reply.length > 0) await this.replicatedAt(session);
    const out: FetchedDelivery[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) {
      out.push({
        packetId: Number(reply[i]),
        delivery: decodeDelivery(reply[i + 1] as Buffer),
        position: (reply[i + 2] as Buffer).toString(),
      });
    }
    return out;
  }

  /**
   * A loop turn's acknowledgements of a session travel as one `A` triple of packet ids (a comma
   * list): one argument, no promise, per PUBACK. Nothing waits for them; a lost one means the
   * message is sent again with DUP after a resume.
   */
  acknowledged(clientId: string, epoch: number, packetId: number): void {
    const p = this.pending(clientId, epoch);
    const last = p.args.length - 2;
    if (p.acks > 0 && p.acks < ACKS_PER_TRIPLE) {
      p.args[last] += `,${packetId}`;
      p.acks++;
    } else {
      p.args.push('A', String(packetId), '');
      p.acks = 1;
    }
    this.schedule();
  }

  releasing(clientId: string, epoch: number, packetId: number): Promise<void> {
    return this.op(clientId, epoch, 'r', String(packetId));
  }

  awaitRelease(
    clientId: string,
    epoch: number,
    packetId: number,
    waiting: boolean,
    dedupe = '',
  ): Promise<void> {
    return this.op(clientId, epoch, waiting ? 'R' : 'C', String(packetId), dedupe);
  }

  async subscribe(
    clientId: string,
    epoch: number,
    raw: string,
    options: SubscriptionOptions,
    plain: boolean,
  ): Promise<void> {
    const json = JSON.stringify(options);
    await this.op(clientId, epoch, 'S', raw, json);
    if (plain) await this.route(clientId, raw, json, epoch);
  }

  async unsubscribe(clientId: string, epoch: number, raw: string, plain: boolean): Promise<void> {
    await this.op(clientId, epoch, 'U', raw);
    if (plain) await this.route(clientId, raw, '', epoch);
  }

  async detach(clientId: string, epoch: number, expirySeconds: number): Promise<void> {
    this.flush(); // this session's last acknowledgements go first
    const kept = await this.track(
      scripts.sessionDetach.run(this.redis, this.sessionKeys(clientId), epoch, this.nodeId, expirySeconds),
    );
    if (kept === 0) await this.dropRoutes(clientId, epoch);
    else if (kept === 1) await this.offline(clientId, expirySeconds);
  }

  /**
   * Redis forgets an offline session at its expiry; this hint lets a sweep drop its routes then.
   * (The node's index entry stays: a connection of the same id on this node may have re-added it
   * meanwhile; checkServed removes entries this node no longer serves.)
   */
  private async offline(clientId: string, expirySeconds: number): Promise<void> {
    if (expirySeconds === NEVER) return;
    await this.track(
      this.redis.zadd(this.keys.sessionExpiry, this.o.clock.now() + expirySeconds * 1000, clientId),
    );
  }

  /** A claim that made no session after all (expiry 0, nothing stored): nothing for the reaper. */
  notServing(clientId: string): void {
    this.redis.srem(this.keys.nodeSessions(this.nodeId), clientId).catch(() => undefined);
  }

  /**
   * Looks through this node's index of served sessions, a slice per call: a session marked as served
   * here with no connection or claim behind it (its client left during the claim, or its detach
   * failed) goes offline, so it expires and publishers are not held for it; the entry is removed.
   */
  async checkServed(serves: (clientId: string) => boolean): Promise<void> {
    const key = this.keys.nodeSessions(this.nodeId);
    const [next, ids] = await this.redis.sscan(key, this.servedCursor, 'COUNT', 200);
    this.servedCursor = next;
    for (const clientId of ids) {
      if (serves(clientId)) continue;
      const orphaned = await scripts.sessionOrphan.run(
        this.redis,
        this.sessionKeys(clientId),
        this.nodeId,
        '',
      );
      // Served by no connection here: not this node's to reap any more.
      if (!serves(clientId)) await this.redis.srem(key, clientId);
      await this.afterOrphan(clientId, orphaned);
    }
  }

  /** Before a claim: index the client for the reaper of this node (a stray entry is skipped). */
  async serving(clientId: string): Promise<void> {
    await this.redis.sadd(this.keys.nodeSessions(this.nodeId), clientId);
  }

  /**
   * An orphaned session ended at once (expiry 0), or expires from now (the sweep's hint). Not
   * orphaned (null) and gone: it ended some other way (maybe by a re-sent orphan whose first run's
   * answer was lost), and the sweep is asked to drop any routes it left. Not orphaned and offline
   * with an expiry: its node detached it and may have died before leaving the hint, so the hint is
   * left for when Redis forgets it (a second hint only makes the sweep look twice).
   */
  private async afterOrphan(clientId: string, orphaned: [number, number] | null): Promise<void> {
    const hint = (at: number) => this.redis.zadd(this.keys.sessionExpiry, at, clientId);
    if (orphaned === null) {
      const ttl = await this.redis.pttl(this.keys.session(clientId));
      if (ttl === -2) await hint(this.o.clock.now());
      else if (ttl >= 0) await hint(this.o.clock.now() + ttl);
      return;
    }
    const [exp, epoch] = orphaned;
    if (exp === 0) await this.dropRoutes(clientId, epoch);
    else if (exp !== NEVER) await hint(this.o.clock.now() + exp * 1000);
  }

  /**
   * A session ended (Clean Start, expiry, expiry 0) or a new one starts: the routes made by
   * connections up to `epoch` go, and no connection up to it can route again (session-routes-drop.lua).
   */
  async dropRoutes(clientId: string, epoch: number): Promise<void> {
    const k = this.keys;
    const p = k.partitionOf(clientId);
    await this.track(
      scripts.sessionRoutesDrop.run(
        this.redis,
        [k.sessionRoutes(p), k.clientRoutes(clientId), k.routeLog(p)],
        clientId,
        this.o.logMaxLen,
        epoch,
      ),
    );
  }

  /** Routes (or unroutes, with '') a plain subscription; refused below the client's route floor. */
  private async route(clientId: string, raw: string, json: string, epoch: number): Promise<void> {
    const k = this.keys;
    const p = k.partitionOf(clientId);
    const done = await this.track(
      scripts.sessionRoute.run(
        this.redis,
        [k.sessionRoutes(p), k.clientRoutes(clientId), k.routeLog(p)],
        clientId,
        raw,
        json,
        this.o.logMaxLen,
        epoch,
      ),
    );
    if (done === -1) {
      this.fencedOut(clientId, epoch);
      throw new FencedError();
    }
    // A route set: the subscriber's SUBACK waits until every node routes to it.
    if (json !== '' && typeof done === 'string') await this.o.routeApplied?.(p, done);
  }

  /**
   * A write of connection `epoch` was refused: another connection owns the id (a takeover whose kick
   * never came, or the reaper orphaned it). The connection closes now (0x8E), whatever pub/sub said.
   */
  private fencedOut(clientId: string, epoch: number): void {
    this.o.logger.info({ event: 'session.fenced_out', clientId, epoch });
    this.o.handlers()?.release(clientId, epoch + 1);
  }

  /** The session's changes of this loop turn under `epoch` (an older epoch's go out first). */
  private pending(clientId: string, epoch: number): PendingOps {
    let p = this.ops.get(clientId);
    if (p !== undefined && p.epoch !== epoch) {
      this.flushOps(clientId, p);
      p = undefined;
    }
    if (p === undefined) {
      p = { epoch, args: [], waiters: [], acks: 0 };
      this.ops.set(clientId, p);
    }
    return p;
  }

  /** Queues one fenced change of a session; resolves once Redis applied it (rejects when fenced out). */
  private op(clientId: string, epoch: number, op: string, a: string, b = ''): Promise<void> {
    const p = this.pending(clientId, epoch);
    p.args.push(op, a, b);
    p.acks = 0;
    this.schedule();
    return new Promise((resolve, reject) => p.waiters.push({ resolve, reject }));
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Sends the queued changes (one script per session) and pokes (one message per node). */
  flush(): void {
    this.flushScheduled = false;
    const appends = this.appends;
    this.appends = new Map();
    for (const [clientId, batch] of appends) this.flushAppends(clientId, batch);
    const ops = this.ops;
    this.ops = new Map();
    for (const [clientId, p] of ops) this.flushOps(clientId, p);
    const pokes = this.pokes;
    this.pokes = new Map();
    for (const [node, ids] of pokes) {
      if (node === this.nodeId) this.o.handlers()?.poke([...ids]);
      else this.o.sendControl(node, { t: 'poke', c: [...ids] });
    }
  }

  private flushOps(clientId: string, p: PendingOps, attempt = 0): void {
    if (this.ops.get(clientId) === p) this.ops.delete(clientId);
    this.track(
      scripts.sessionOps.run(this.redis, this.sessionKeys(clientId), p.epoch, this.nodeId, ...p.args),
    ).then(
      (ok) => {
        if (ok === 1) {
          // cluster.replicaAcks: what a client's next step relies on (QoS 2 ids and phases,
          // subscriptions) is confirmed only once a replica holds it.
          const resolve = () => {
            for (const w of p.waiters) w.resolve();
          };
          // Without a replica answering (a failover under way) the same changes are made again (they
          // are idempotent) until one does: a QoS 2 phase a failover lost would have the message sent
          // again after PUBREL, twice. Past OPS_REPLICATION_RETRIES it goes on as without replicaAcks.
          const again = () => {
            if (this.closed || attempt >= OPS_REPLICATION_RETRIES) resolve();
            else this.o.clock.setTimeout(() => this.flushOps(clientId, p, attempt + 1), OPS_RETRY_MS);
          };
          if (this.o.replicated === undefined || p.waiters.length === 0) resolve();
          else this.replicatedAt(this.keys.session(clientId)).then(resolve, again);
        } else {
          const err = new FencedError();
          for (const w of p.waiters) w.reject(err);
          this.fencedOut(clientId, p.epoch);
        }
      },
      (err: Error) => {
        this.o.logger.warn({ event: 'session.write_failed', clientId, err: err.message });
        for (const w of p.waiters) w.reject(err);
      },
    );
  }

  /** Resolves once Redis replicas hold the writes made so far to `key`'s slot (at once without replicaAcks). */
  private replicatedAt(key: string): Promise<void> {
    return this.o.replicated?.(key) ?? Promise.resolve();
  }

  // ---- cluster housekeeping ----------------------------------------------------------------------

  /**
   * A dead node's sessions go offline (their expiry starts now, the dead node's connection loses
   * ownership); those that should end now end. Their queues stay: nothing acknowledged is lost.
   * `fence` names the node's run (see session-orphan.lua): sessions a later run claimed are left alone,
   * and so are their entries in the node's index.
   */
  async reap(node: string, fence: string): Promise<number> {
    const index = this.keys.nodeSessions(node);
    let n = 0;
    let cursor = '0';
    // A batch at a time (SSCAN, never one SMEMBERS of a huge set), its sessions side by side: their
    // commands go out together (pipelined), not one round trip per session; each session's own
    // steps stay in order.
    do {
      const [next, ids] = await this.redis.sscan(index, cursor, 'COUNT', REAP_BATCH);
      cursor = next;
      const reaped = await Promise.all(ids.map((clientId) => this.reapOne(index, node, fence, clientId)));
      for (const r of reaped) if (r) n++;
    } while (cursor !== '0');
    return n;
  }

  /** One session of a dead node's run: orphaned (true), or left alone (a later run claimed it). */
  private async reapOne(index: string, node: string, fence: string, clientId: string): Promise<boolean> {
    const orphaned = await scripts.sessionOrphan.run(this.redis, this.sessionKeys(clientId), node, fence);
    if (orphaned !== null && orphaned[0] < 0) return false;
    await this.afterOrphan(clientId, orphaned);
    await this.redis.srem(index, clientId);
    return orphaned !== null;
  }

  /** Drops the routes of sessions that expired (Redis removed their keys). Returns how many. */
  async sweep(): Promise<number> {
    const k = this.keys;
    const due = await this.redis.zrangebyscore(k.sessionExpiry, '-inf', this.o.clock.now(), 'LIMIT', 0, 100);
    let n = 0;
    for (const clientId of due) {
      try {
        // The epoch first: a session made after this read has a higher one, and its routes are kept.
        // (An owner hash that expired too: an epoch above all it issued, below any later claim's.)
        const epoch = Number(await scripts.ownerEpoch.run(this.redis, [k.owner(clientId)]));
        const on = await this.redis.hget(k.session(clientId), 'on');
        if (on === null) {
          await this.dropRoutes(clientId, epoch);
          n++;
          this.expired++;
        } else if (on === '') continue; // not expired yet by Redis' clock: next time
        await this.redis.zrem(k.sessionExpiry, clientId);
      } catch (err) {
        // One bad entry must not stop the sweep of the others: it is tried again next time.
        this.o.logger.warn({ event: 'cluster.session_sweep_failed', clientId, err: String(err) });
      }
    }
    return n;
  }

  /** Sessions that expired whose routes this node's sweep dropped (the nodes' sum is the cluster's). */
  expiredCount(): number {
    return this.expired;
  }

  /** The node leaves: publishers still held by flow control are released (their messages are queued). */
  close(): void {
    this.closed = true;
    const waiting = [...this.draining.values()];
    this.draining.clear();
    for (const waiters of waiting) for (const release of waiters) release();
  }

  /** Waits (bounded by the caller) for the writes sent so far. */
  async settle(): Promise<void> {
    this.flush();
    await Promise.allSettled([...this.inFlight]);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }
}

/** Decodes the session part of owner-claim.lua's reply. */
export function decodeStoredSession(
  present: number,
  fields: Buffer[],
  inflight: Buffer[],
  rel: Buffer[],
): StoredSession {
  const subscriptions = new Map<string, SubscriptionOptions>();
  const dedupeIds = new Map<number, string>();
  let position = '0-0';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i].toString();
    if (name === 'rd') position = fields[i + 1].toString();
    if (name.startsWith('q2:')) dedupeIds.set(Number(name.slice(3)), fields[i + 1].toString());
    if (!name.startsWith('s:')) continue;
    try {
      subscriptions.set(name.slice(2), JSON.parse(fields[i + 1].toString()) as SubscriptionOptions);
    } catch {
      // an unreadable subscription is skipped
    }
  }
  const entries: { sid: string; entry: StoredSession['inflight'][number] }[] = [];
  for (let i = 0; i + 3 < inflight.length; i += 4) {
    entries.push({
      sid: inflight[i + 3].toString(),
      entry: {
        packetId: Number(inflight[i].toString()),
        phase: inflight[i + 1].toString() === 'r' ? 'pubrel' : 'publish',
        delivery: decodeDelivery(inflight[i + 2]),
      },
    });
  }
  // Sent in queue order: resumed in it [MQTT-4.6.0-1].
  entries.sort((a, b) => compareStreamIds(a.sid, b.sid));
  return {
    present: present === 1,
    subscriptions,
    inflight: entries.map((e) => e.entry),
    awaitingRelease: rel.map((b) => Number(b.toString())),
    dedupeIds,
    position,
  };
}

function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}
