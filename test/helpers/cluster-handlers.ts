/**
 * ClusterHandlers for backend tests that drive a RedisClusterBackend without a broker: every
 * callback does nothing (the test drives claims itself, so every client counts as served), except
 * those a test gives.
 */
import type { ClusterHandlers } from '../../src/backend/types.js';

export function idleHandlers(given: Partial<ClusterHandlers> = {}): ClusterHandlers {
  return {
    deliver: () => undefined,
    release: () => undefined,
    publishWill: () => undefined,
    readinessChanged: () => undefined,
    poke: () => undefined,
    refetch: () => undefined,
    dropped: () => undefined,
    stateLost: () => undefined,
    serves: () => true,
    ...given,
  };
}
