/**
 * The admin API across a cluster (#14): an operation on a client goes to the node serving it (its
 * owner in Redis), asked over the control channel; "who subscribes to this topic" gathers this
 * node's subscriptions, the persistent sessions' (the store routes them cluster-wide) and those of
 * every node whose routes match (each asked for its own); the log level changes here or on every
 * live node. `serve` answers what other nodes ask of this one. On a single node everything is local.
 */
import type { AdminClientDetail, AdminSubscriber, BrokerAdmin } from './admin-types.js';

/** What one node asks another (over the control channel; JSON). */
export type AdminRequest =
  | { op: 'client'; clientId: string }
  | { op: 'kick'; clientId: string; discardSession: boolean }
  | { op: 'subscribers'; topic: string }
  | { op: 'logLevel'; level: string };

/** The cluster's part (the Redis backend); absent on a single node. */
export interface AdminClusterPort {
  /** The node serving `clientId` now (undefined: offline or unknown). */
  ownerOf(clientId: string): Promise<string | undefined>;
  /** Asks `node` to serve a request; rejects when it does not answer in time. */
  call(node: string, request: AdminRequest): Promise<unknown>;
  /** The other nodes with a route matching `topic`. */
  nodesMatching(topic: string): string[];
  /** The live nodes' ids, this one included. */
  liveNodes(): Promise<string[]>;
}

export interface ClusterAdminOptions {
  nodeId: string;
  local: BrokerAdmin;
  cluster?: AdminClusterPort;
  logLevel(): string;
  /** Sets this node's log level; throws for a level that does not exist. */
  setLogLevel(level: string): void;
}

/** A client as the admin API shows it, with the node that serves it. */
export type AdminClientOnNode = AdminClientDetail & { node: string };

/** Another node did not answer (gone, cut from Redis): the API's 502. */
export class NodeUnavailableError extends Error {
  override readonly name = 'NodeUnavailableError';
}

/** A request another node sent that is not one of AdminRequest. */
class BadRequestError extends Error {
  readonly code = 'ADMIN_BAD_REQUEST';
}

export class ClusterAdmin {
  constructor(private readonly o: ClusterAdminOptions) {}

  /** The client, wherever it is connected (or its session offline here). */
  async client(clientId: string): Promise<AdminClientOnNode | undefined> {
    const here = this.o.local.client(clientId);
    if (here !== undefined && (here.connected || this.o.cluster === undefined))
      return { ...here, node: this.o.nodeId };
    const owner = await this.owner(clientId);
    if (owner !== undefined) {
      const there = (await this.ask(owner, { op: 'client', clientId })) as AdminClientDetail | null;
      if (there !== null) return { ...there, node: owner };
    }
    return here === undefined ? undefined : { ...here, node: this.o.nodeId };
  }

  /** Disconnects the client (0x98) on the node serving it; false when no node knows it. */
  async kick(clientId: string, discardSession: boolean): Promise<{ kicked: boolean; node: string | null }> {
    if (this.o.local.kick(clientId, discardSession)) return { kicked: true, node: this.o.nodeId };
    const owner = await this.owner(clientId);
    if (owner === undefined) return { kicked: false, node: null };
    const kicked = (await this.ask(owner, { op: 'kick', clientId, discardSession })) === true;
    return { kicked, node: kicked ? owner : null };
  }

  /** Every subscription matching `topic` in the cluster (each once). */
  async subscribers(topic: string): Promise<AdminSubscriber[]> {
    const out = this.o.local.subscribers(topic, this.o.nodeId, true);
    const cluster = this.o.cluster;
    if (cluster === undefined) return out;
    const theirs = await Promise.all(
      [...new Set(cluster.nodesMatching(topic))]
        .filter((n) => n !== this.o.nodeId)
        .map((n) => this.ask(n, { op: 'subscribers', topic }) as Promise<AdminSubscriber[]>),
    );
    for (const list of theirs) out.push(...list);
    return out;
  }

  /** Sets the log level of this node, or of every live node; each node's answer. */
  async setLogLevel(
    level: string,
    everywhere: boolean,
  ): Promise<{ nodeId: string; level?: string; error?: string }[]> {
    this.o.setLogLevel(level);
    const mine = { nodeId: this.o.nodeId, level: this.o.logLevel() };
    const cluster = this.o.cluster;
    if (!everywhere || cluster === undefined) return [mine];
    const others = (await cluster.liveNodes()).filter((n) => n !== this.o.nodeId);
    const answers = await Promise.all(
      others.map((nodeId) =>
        cluster.call(nodeId, { op: 'logLevel', level }).then(
          (v) => ({ nodeId, level: String(v) }),
          (err: Error) => ({ nodeId, error: err.message }),
        ),
      ),
    );
    return [mine, ...answers];
  }

  /** Serves a request another node sent: this node's own part only. */
  async serve(raw: unknown): Promise<unknown> {
    const r = raw as Partial<AdminRequest> & Record<string, unknown>;
    if (typeof r !== 'object' || r === null) throw new BadRequestError('not an admin request');
    switch (r.op) {
      case 'client':
        if (typeof r.clientId !== 'string') break;
        return this.o.local.client(r.clientId) ?? null;
      case 'kick':
        if (typeof r.clientId !== 'string') break;
        return this.o.local.kick(r.clientId, r.discardSession === true);
      case 'subscribers':
        if (typeof r.topic !== 'string') break;
        return this.o.local.subscribers(r.topic, this.o.nodeId, false);
      case 'logLevel':
        if (typeof r.level !== 'string') break;
        this.o.setLogLevel(r.level);
        return this.o.logLevel();
    }
    throw new BadRequestError(`not an admin request: ${String(r.op)}`);
  }

  private owner(clientId: string): Promise<string | undefined> {
    const cluster = this.o.cluster;
    if (cluster === undefined) return Promise.resolve(undefined);
    return cluster.ownerOf(clientId).then((n) => (n === this.o.nodeId ? undefined : n));
  }

  private ask(node: string, request: AdminRequest): Promise<unknown> {
    return this.o.cluster!.call(node, request).catch((err: Error) => {
      throw new NodeUnavailableError(`node ${node}: ${err.message}`);
    });
  }
}
