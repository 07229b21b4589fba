/**
 * A single node that keeps its state on disk: the memory hub (one node) with a DiskJournal under
 * it. The broker serves it through the same ClusterBackend and SessionStore ports as a cluster, so
 * persistent sessions take the one durable path (session/durable-queue.ts) whatever stores them.
 */
import type { Clock } from '../../clock.js';
import type { Instruments } from '../../observability/instruments.js';
import { MemoryHub } from '../memory/cluster-hub.js';
import type { ClusterBackend } from '../types.js';
import { DiskJournal, type SyncPolicy } from './disk-journal.js';

export interface LocalNode {
  readonly backend: ClusterBackend;
  readonly journal: DiskJournal;
  /** After the broker's shutdown: drops the wills of a planned stop, writes what is pending, closes. */
  close(): Promise<void>;
}

/** Opens `dir` (a DataDirError names the file when it cannot be used) and restores what it holds. */
export async function openLocalNode(options: {
  dir: string;
  sync: SyncPolicy;
  clock: Clock;
  nodeId: string;
  maxQueued: number;
  instruments?: Pick<Instruments, 'persistenceCommit'>;
}): Promise<LocalNode> {
  const { journal, state } = await DiskJournal.open(options.dir, options.sync, options.instruments);
  const hub = new MemoryHub(options.clock, journal, state, { standalone: true });
  const backend = hub.node(options.nodeId, options.maxQueued);
  return {
    backend,
    journal,
    async close() {
      hub.dropWills();
      await journal.close();
    },
  };
}
