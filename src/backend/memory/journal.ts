/**
 * Where a MemoryHub reports what must survive a restart. Without one the hub is memory only (the
 * in-process cluster of tests); `src/backend/disk/` implements it for a single node with
 * `persistence.dir`. The hub calls these as it changes its maps; the journal writes the latest state
 * of each reported key in one group commit, and `committed()` is what an acknowledgement waits for.
 */
import type { Delivery, Message, SubscriptionOptions } from '../../message.js';
import type { StoredWill } from '../types.js';

/** An owner record as kept: the fencing epoch and the will of that connection. */
export interface OwnerRecord {
  /** The node serving the id; '' once its connection ended or its node is gone. */
  node: string;
  epoch: number;
  will?: StoredWill;
  /** The connection ended keeping nothing: the record goes once its will is taken. */
  released?: boolean;
}

/** A persistent session's state besides its queue and dedupe ids (see HubSession). */
export interface SessionRecord {
  expirySeconds: number;
  /** Clock ms when it went offline; undefined while a connection serves it. */
  offlineAt?: number;
  subscriptions: Map<string, SubscriptionOptions>;
  taken: number;
  appended: number;
  nextPacketId: number;
  inflight: Map<number, { seq: number; phase: 'publish' | 'pubrel' }>;
  awaitingRelease: Map<number, string>;
}

export interface HubJournal {
  /** The session's record changed (read at commit), or it ended (undefined: queue and ids go too). */
  session(clientId: string, record: SessionRecord | undefined): void;
  queued(clientId: string, seq: number, delivery: Delivery): void;
  dequeued(clientId: string, seq: number): void;
  /** A dedupe id taken at `at`, or forgotten (undefined). */
  dedupe(clientId: string, id: string, at: number | undefined): void;
  owner(clientId: string, record: OwnerRecord | undefined): void;
  /** The highest epoch given out. */
  epoch(value: number): void;
  retained(topic: string, message: Message | undefined): void;
  /** Resolves once every change reported so far is on disk; rejects when the write failed. */
  committed(): Promise<void>;
}

/** What a hub loads from its journal at start. */
export interface HubState {
  epoch: number;
  owners: Map<string, OwnerRecord>;
  sessions: Map<
    string,
    { record: SessionRecord; queue: { seq: number; delivery: Delivery }[]; dedupe: Map<string, number> }
  >;
  retained: Message[];
}
