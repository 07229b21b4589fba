import { MemoryHub } from '../../src/backend/memory/cluster-hub.js';
import { MemoryQuotaStore } from '../../src/backend/memory/quota-store.js';
import { MemoryRetainedStore } from '../../src/backend/memory/retained-store.js';
import { systemClock } from '../../src/clock.js';
import { clusterBackendContract } from './cluster-backend.contract.js';
import { quotaStoreContract } from './quota-store.contract.js';
import { retainedStoreContract } from './retained-store.contract.js';
import { sessionStoreContract } from './session-store.contract.js';

retainedStoreContract('memory', (clock) => new MemoryRetainedStore(clock));

quotaStoreContract('memory', (clock) => new MemoryQuotaStore(clock));

clusterBackendContract('memory hub', async () => {
  const hub = new MemoryHub(systemClock);
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
});

sessionStoreContract('memory hub', async (handlers) => {
  const hub = new MemoryHub(systemClock);
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
});
