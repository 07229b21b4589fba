import { MemoryHub } from '../../src/backend/memory/cluster-hub.js';
import { MemoryQuotaStore } from '../../src/backend/memory/quota-store.js';
import { MemoryRetainedStore } from '../../src/backend/memory/retained-store.js';
import { systemClock } from '../../src/clock.js';
import { hubClusterPair, hubSessionPair } from '../helpers/hub-pairs.js';
import { clusterBackendContract } from './cluster-backend.contract.js';
import { quotaStoreContract } from './quota-store.contract.js';
import { retainedStoreContract } from './retained-store.contract.js';
import { sessionStoreContract } from './session-store.contract.js';

retainedStoreContract('memory', (clock) => new MemoryRetainedStore(clock));

quotaStoreContract('memory', (clock) => new MemoryQuotaStore(clock));

clusterBackendContract('memory hub', async () => hubClusterPair(new MemoryHub(systemClock)));

sessionStoreContract('memory hub', (handlers) => hubSessionPair(new MemoryHub(systemClock), handlers));

// The single-node default's hub (standaloneNode): appends answered at once, pokes in a microtask.
sessionStoreContract('memory hub, standalone', (handlers) =>
  hubSessionPair(new MemoryHub(systemClock, undefined, undefined, { standalone: true }), handlers),
);
