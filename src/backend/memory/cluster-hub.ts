/**
 * The cluster backend in memory: several brokers in one process joined through a MemoryHub. It keeps
 * the same contract as the Redis backend (test/contract/cluster-backend.contract.ts runs both), so the
 * cluster logic of the broker (routing, shared subscriptions, takeover, wills) can be exercised
 * without Redis, and the Redis backend is held to the behaviour of this simple one.
 */
import type { Clock } from '../../clock.js';
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
import { MemoryRetainedStore } from './retained-store.js';
import { HubSessions, MemorySessionStore } from './session-store.js';

interface Owner {
  node: string;
  epoch: number;
  will?: StoredWill;
}

/** What the nodes of one in-process cluster share: the "Redis" of the memory backend. */
export class MemoryHub {
  readonly nodes = new Map<string, MemoryClusterBackend>();
  readonly routes = new Map<string, Set<string>>();
  readonly owners = new Map<string, Owner>();
  readonly stats = new Map<string, Record<string, number>>();
  readonly retained: RetainedStore;
  /** Persistent sessions kept by the cluster (what Redis holds per session). */
  readonly sessions: HubSessions;

  constructor(readonly clock: Clock) {
    this.retained = new MemoryRetainedStore(clock);
    this.sessions = new HubSessions(
      clock,
      (clientId) => this.owners.get(clientId),
      (node) => this.nodes.get(node)?.clusterHandlers,
    );
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
      if (owner.node !== nodeId || owner.will === undefined) continue;
      const will = owner.will;
      const epoch = owner.epoch;
      survivor?.reapWill(clientId, epoch, will);
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
  private handlers: ClusterHandlers | undefined;
  private running = false;

  constructor(
    private readonly hub: MemoryHub,
    readonly nodeId: string,
    maxQueued: number,
  ) {
    this.replica = new RouteReplica(nodeId);
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
    const epoch = (owner?.epoch ?? 0) + 1;
    let will: StoredWill | null = null;
    if (owner?.will !== undefined && (clean || owner.will.delaySeconds === 0)) will = owner.will;
    this.hub.owners.set(clientId, { node: this.nodeId, epoch });
    const claim: Claim = { epoch, previous: owner?.node || null, will };
    const session = this.hub.sessions.claim(clientId, this.nodeId, clean, expirySeconds);
    if (session !== undefined) claim.session = session;
    return claim;
  }

  async requestRelease(node: string, clientId: string, epoch: number): Promise<void> {
    this.hub.nodes.get(node)?.handlers?.release(clientId, epoch);
  }

  /** Kept: an owner entry holds the epoch later claims raise (a test hub is not long-lived). */
  async releaseOwnership(_clientId: string, _epoch: number): Promise<void> {}

  async storeWill(clientId: string, epoch: number, will: StoredWill): Promise<void> {
    const owner = this.hub.owners.get(clientId);
    if (owner?.epoch === epoch) owner.will = will;
  }

  async takeWill(clientId: string, epoch: number): Promise<boolean> {
    const owner = this.hub.owners.get(clientId);
    if (owner?.epoch !== epoch || owner.will === undefined) return false;
    owner.will = undefined;
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
