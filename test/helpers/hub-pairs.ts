/**
 * Two nodes A and B of one MemoryHub (in memory, or over a DiskJournal) as the contract suites
 * take them: test/contract/memory.test.ts and disk.test.ts run the same contracts on both.
 */
import type { MemoryHub } from '../../src/backend/memory/cluster-hub.js';
import type { ClusterHandlers } from '../../src/backend/types.js';
import type { ClusterPair } from '../contract/cluster-backend.contract.js';
import type { SessionPair } from '../contract/session-store.contract.js';

/** Nodes A and B, not started (the ClusterBackend contract starts them). */
export function hubClusterPair(hub: MemoryHub): ClusterPair {
  const a = hub.node('A');
  const b = hub.node('B');
  return {
    a,
    b,
    async stop() {
      await a.stop();
      await b.stop();
    },
  };
}

/** Nodes A and B started with `handlers`, a queue limit of 3; reapA() kills A as a reaper would. */
export async function hubSessionPair(
  hub: MemoryHub,
  handlers: (node: 'A' | 'B') => ClusterHandlers,
): Promise<SessionPair> {
  const a = hub.node('A', 3);
  const b = hub.node('B', 3);
  await a.start(handlers('A'));
  await b.start(handlers('B'));
  return {
    a,
    b,
    async reapA() {
      hub.kill('A');
    },
    async stop() {
      await a.stop();
      await b.stop();
    },
  };
}
