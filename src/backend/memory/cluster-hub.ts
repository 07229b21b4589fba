/**
 * The cluster backend in memory: several brokers in one process joined through a MemoryHub. It keeps
 * the same contract as the Redis backend (test/contract/cluster-backend.contract.ts runs both), so the
 * cluster logic of the broker (routing, shared subscriptions, takeover, wills) can be exercised
 * without Redis, and the Redis backend is held to the behaviour of this simple one.
 */

import type { Clock } from '../../clock.js';
import { isExpired } from '../../message.js';
import { filterKey, RouteReplica } from '../route-replica.js';
import type {
  Claim,
  ClusterBackend,
  ClusterBus,
  ClusterHandlers,
  ClusterNodeInfo,
  Envelope,
  RetainedStore,
  RouteTable,
  StoredWill,
} from '../types.js';
import { MemoryBanStore } from './bans.js';
import { MemoryDelayedStore } from './delayed.js';
import type { HubJournal, HubState, OwnerRecord } from './journal.js';
import { MemoryRetainedStore } from './retained-store.js';
import { HubSessions, MemorySessionStore } from './session-store.js';

/**
 * What the nodes of one in-process cluster share: the "Redis" of the memory backend. With a journal
 * (a single node's data dir, src/backend/disk/) every change is also written to disk and the hub
 * starts from what the journal loaded.
 */
export class MemoryHub {
  readonly nodes = new Map<string, MemoryClusterBackend>();
  readonly routes = new Map<string, Set<string>>();
  readonly owners = new Map<string, OwnerRecord>();
  readonly stats = new Map<string, Record<string, number>>();
  readonly retained: RetainedStore;
  /** Persistent sessions kept by the cluster (what Redis holds per session). */
  readonly sessions: HubSessions;
  /** The highest fencing epoch given out: every claim, of any id, gets a higher one. */
  private lastEpoch = 0;
  /** Wills of connections a restart ended (loaded from the journal): the first node to start sends them. */
  private orphanedWills: [clientId: string, epoch: number, will: StoredWill][] = [];
  private readonly memoryRetained: MemoryRetainedStore;

  /** A single node's own hub (the only node there can be): it reports no cluster. */
  readonly standalone: boolean;
  /** The bans, shared by the hub's nodes (in memory: a restart forgets them). */
  readonly bans: MemoryBanStore;
  /** Delayed messages, shared by the hub's nodes (in memory). */
  readonly delayed: MemoryDelayedStore;

  constructor(
    readonly clock: Clock,
    readonly journal?: HubJournal,
    state?: HubState,
    options: { standalone?: boolean } = {},
  ) {
    this.standalone = options.standalone ?? false;
    this.bans = new MemoryBanStore(clock);
    this.delayed = new MemoryDelayedStore(clock);
    this.memoryRetained = new MemoryRetainedStore(clock);
    this.retained =
      journal === undefined ? this.memoryRetained : journaledRetained(this.memoryRetained, journal);
    this.sessions = new HubSessions(
      clock,
      (clientId) => this.owners.get(clientId),
      (node) => this.nodes.get(node)?.clusterHandlers,
      journal,
      this.standalone && journal === undefined,
    );
    if (state !== undefined) this.restore(state);
  }

  /** A restart: the loaded connections are gone (their wills are due), their sessions offline. */
  private restore(state: HubState): void {
    this.lastEpoch = state.epoch;
    const now = this.clock.now();
    for (const message of state.retained) {
      // One that expired while the node was down goes from the disk too.
      if (isExpired(message, now)) this.journal?.retained(message.topic, undefined);
      else this.memoryRetained.set(message);
    }
    for (const [clientId, owner] of state.owners) {
      const record: OwnerRecord = { node: '', epoch: owner.epoch, released: owner.released };
      if (owner.will !== undefined) {
        record.will = owner.will;
        this.orphanedWills.push([clientId, owner.epoch, owner.will]);
      }
      this.owners.set(clientId, record);
      this.journal?.owner(clientId, record);
    }
    this.sessions.restore(state.sessions);
  }

  /** Gives out the next fencing epoch. */
  nextEpoch(): number {
    const epoch = ++this.lastEpoch;
    this.journal?.epoch(epoch);
    return epoch;
  }

  /** The owner record of `clientId` changed (or is gone): the journal writes it. */
  ownerChanged(clientId: string): void {
    this.journal?.owner(clientId, this.owners.get(clientId));
  }

  /** Hands the wills a restart left to the node that starts first. */
  takeOrphanedWills(): [clientId: string, epoch: number, will: StoredWill][] {
    const wills = this.orphanedWills;
    this.orphanedWills = [];
    return wills;
  }

  /**
   * A planned stop of the hub's only node (drain): the wills it holds are not sent, now or after a
   * restart (docs/deployment.md: a drain is a planned move, clients reconnect at once).
   */
  dropWills(): void {
    for (const [clientId, owner] of this.owners) {
      if (owner.will === undefined) continue;
      owner.will = undefined;
      if (owner.released === true) this.owners.delete(clientId);
      this.ownerChanged(clientId);
    }
  }

  /** A backend for node `nodeId` of this hub; `maxQueued`: a persistent session's queue limit. */
  node(nodeId: string, maxQueued = 1000): MemoryClusterBackend {
    return new MemoryClusterBackend(this, nodeId, maxQueued);
  }

  /** Applies a route change to every other running node's replica. */
  broadcast(op: 'a' | 'd' | 'n', node: string, fkey: string): void {
    for (const other of this.nodes.values()) other.replica.apply(op, node, fkey);
  }

  /**
   * Removes a node as a reaper would: its routes go, its clients' wills are published once, and the
   * sessions it served go offline (their expiry starts; it no longer owns them).
   */
  kill(nodeId: string): void {
    const node = this.nodes.get(nodeId);
    if (node === undefined) return;
    this.nodes.delete(nodeId);
    this.routes.delete(nodeId);
    this.stats.delete(nodeId);
    this.broadcast('n', nodeId, '');
    const survivor = this.nodes.values().next().value as MemoryClusterBackend | undefined;
    for (const [clientId, owner] of this.owners) {
      if (owner.node !== nodeId) continue;
      owner.node = '';
      this.ownerChanged(clientId);
      if (owner.will === undefined) continue;
      survivor?.reapWill(clientId, owner.epoch, owner.will);
    }
    this.sessions.reap(nodeId);
  }
}

export class MemoryClusterBackend implements ClusterBackend {
  readonly replica: RouteReplica;
  readonly routes: RouteTable;
  readonly bus: ClusterBus;
  readonly busStats = { envelopes: 0, batches: 0 };
  readonly sessions: MemorySessionStore;
  readonly standalone: boolean;
  readonly bans: MemoryBanStore;
  readonly delayed: MemoryDelayedStore;
  private handlers: ClusterHandlers | undefined;
  private running = false;

  constructor(
    private readonly hub: MemoryHub,
    readonly nodeId: string,
    maxQueued: number,
  ) {
    this.replica = new RouteReplica(nodeId);
    this.standalone = hub.standalone;
    this.bans = hub.bans;
    this.delayed = hub.delayed;
    this.sessions = new MemorySessionStore(hub.sessions, nodeId, maxQueued);
    const own = (): Set<string> => {
      let set = hub.routes.get(nodeId);
      if (set === undefined) {
        set = new Set();
        hub.routes.set(nodeId, set);
      }
      return set;
    };
    this.routes = {
      // Every node of the hub applies a route in the same step: nothing to wait for.
      add: (filter, group) => {
        const k = filterKey(filter, group);
        if (own().has(k)) return undefined;
        own().add(k);
        hub.broadcast('a', nodeId, k);
        return undefined;
      },
      pending: () => undefined,
      remove: (filter, group) => {
        const k = filterKey(filter, group);
        if (!own().delete(k)) return;
        hub.broadcast('d', nodeId, k);
      },
      matchNodes: (topic, visit) => this.replica.matchNodes(topic, visit),
      matchShared: (topic, visit) => this.replica.matchShared(topic, visit),
    };
    this.bus = {
      send: (node: string, envelope: Envelope, accepted?: (err?: Error) => void) => {
        const target = hub.nodes.get(node);
        this.busStats.envelopes++;
        this.busStats.batches++;
        // Delivered on a later turn, as over Redis; accepted once the hub holds it.
        if (target !== undefined) setImmediate(() => target.receive(envelope));
        accepted?.();
      },
    };
  }

  get retained(): RetainedStore {
    return this.hub.retained;
  }

  get ready(): boolean {
    return this.running;
  }

  /** The broker's callbacks, while the node runs. */
  get clusterHandlers(): ClusterHandlers | undefined {
    return this.running ? this.handlers : undefined;
  }

  async start(handlers: ClusterHandlers): Promise<void> {
    this.handlers = handlers;
    this.running = true;
    for (const [node, keys] of this.hub.routes) for (const k of keys) this.replica.apply('a', node, k);
    this.hub.nodes.set(this.nodeId, this);
    for (const [clientId, epoch, will] of this.hub.takeOrphanedWills()) this.reapWill(clientId, epoch, will);
    handlers.readinessChanged(true);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.hub.nodes.delete(this.nodeId);
    this.hub.routes.delete(this.nodeId);
    this.hub.broadcast('n', this.nodeId, '');
  }

  receive(envelope: Envelope): void {
    void this.handlers?.deliver(envelope);
  }

  async claim(clientId: string, clean: boolean, expirySeconds = 0): Promise<Claim> {
    const owner = this.hub.owners.get(clientId);
    const epoch = this.hub.nextEpoch();
    let will: StoredWill | null = null;
    if (owner?.will !== undefined && (clean || owner.will.delaySeconds === 0)) will = owner.will;
    this.hub.owners.set(clientId, { node: this.nodeId, epoch });
    this.hub.ownerChanged(clientId);
    const claim: Claim = { epoch, previous: owner?.node || null, will };
    if (clean && this.hub.sessions.sessions.has(clientId)) claim.discarded = true;
    const session = this.hub.sessions.claim(clientId, this.nodeId, clean, expirySeconds);
    if (session !== undefined) claim.session = session;
    await this.hub.sessions.durable();
    return claim;
  }

  async requestRelease(node: string, clientId: string, epoch: number): Promise<void> {
    this.hub.nodes.get(node)?.handlers?.release(clientId, epoch);
  }

  /** The record goes once its will is taken (epochs come from the hub's counter, so none is reused). */
  async releaseOwnership(clientId: string, epoch: number): Promise<void> {
    const owner = this.hub.owners.get(clientId);
    if (owner?.epoch !== epoch) return;
    owner.node = '';
    owner.released = true;
    if (owner.will === undefined) this.hub.owners.delete(clientId);
    this.hub.ownerChanged(clientId);
    await this.hub.sessions.durable();
  }

  async storeWill(clientId: string, epoch: number, will: StoredWill): Promise<void> {
    const owner = this.hub.owners.get(clientId);
    if (owner?.epoch !== epoch) return;
    owner.will = will;
    this.hub.ownerChanged(clientId);
    await this.hub.sessions.durable();
  }

  async takeWill(clientId: string, epoch: number): Promise<boolean> {
    const owner = this.hub.owners.get(clientId);
    if (owner?.epoch !== epoch || owner.will === undefined) return false;
    owner.will = undefined;
    if (owner.released === true) this.hub.owners.delete(clientId);
    this.hub.ownerChanged(clientId);
    // Taken once on disk: a restart does not send it again.
    await this.hub.sessions.durable();
    return true;
  }

  /** A will of a dead node, published after its delay if it is still there then. */
  reapWill(clientId: string, epoch: number, will: StoredWill): void {
    this.hub.clock.setTimeout(() => {
      void this.takeWill(clientId, epoch).then((taken) => {
        if (taken) this.handlers?.publishWill(will);
      });
    }, will.delaySeconds * 1000);
  }

  async shareStats(mine: Record<string, number>): Promise<Record<string, Record<string, number>>> {
    this.hub.stats.set(this.nodeId, mine);
    const out: Record<string, Record<string, number>> = {};
    for (const id of this.hub.nodes.keys()) {
      const s = this.hub.stats.get(id);
      if (s !== undefined) out[id] = s;
    }
    return out;
  }

  async liveNodes(): Promise<ClusterNodeInfo[]> {
    const now = this.hub.clock.now();
    return [...this.hub.nodes.keys()].map((nodeId) => ({ nodeId, lastSeenMs: now }));
  }
}

/** Retained messages in memory, each change also written to the journal (set resolves once on disk). */
function journaledRetained(inner: MemoryRetainedStore, journal: HubJournal): RetainedStore {
  return {
    set(message) {
      inner.set(message);
      journal.retained(message.topic, message.payload.length === 0 ? undefined : message);
      return journal.committed();
    },
    get: (topic) => inner.get(topic),
    match: (filter, visit) => inner.match(filter, visit),
    get size() {
      return inner.size;
    },
  };
}

/**
 * The backend of a single node in memory: the only node of a hub of its own, so its persistent
 * sessions, wills and retained messages take the same path as in a cluster (nothing survives a
 * restart; with a data dir see src/backend/disk/local-node.ts).
 */
export function standaloneNode(clock: Clock, nodeId: string, maxQueued: number): MemoryClusterBackend {
  return new MemoryHub(clock, undefined, undefined, { standalone: true }).node(nodeId, maxQueued);
}
