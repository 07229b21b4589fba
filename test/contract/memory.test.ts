import { MemoryRetainedStore } from '../../src/backend/memory/retained-store.js';
import { retainedStoreContract } from './retained-store.contract.js';

retainedStoreContract('memory', (clock) => new MemoryRetainedStore(clock));
