/**
 * What docs/guarantees.md (and ../shared/CLUSTER.md's guarantees) promise per fault class, in one
 * place: every violation kind counts against the run unless listed here as allowed for the class,
 * with the sentence of the doc that allows it. QoS 0 loss is never checked (QoS 0 means that).
 */
import type { ViolationKind } from './check.js';

export const FAULT_CLASSES = [
  'none',
  'kill',
  'pause-short',
  'pause-long',
  'partition-short',
  'partition-long',
  'partition-client',
  'redis-restart-aof',
  'redis-restart-nopersist',
  'sentinel-failover',
  'cluster-master-kill',
  'clock-skew',
  'slow-consumer',
  'takeover',
] as const;
export type FaultClass = (typeof FAULT_CLASSES)[number];

type Allowed = Partial<Record<ViolationKind, string>>;

/** Recovery takes time (reconnects, liveness timeout): a first delivery may be late. */
const RECOVERY = 'recovery after the fault takes longer than the latency bound';

/** A share re-routed or handed over after its member left or died arrives late. */
const SHARED_ORDER =
  "guarantees.md, limits: a share handed over from a dead member's node, or re-routed after its member left, may arrive after later messages";
/** A node cut off from Redis (or paused) serves retained messages from its last copy. */
const STALE_RETAINED =
  'guarantees.md, partition row / retained: a node cut off from Redis serves its last copy of the retained messages until it has resynced';

const BEYOND_LIVENESS: Allowed = {
  'order-shared': SHARED_ORDER,
  'retained-stale': STALE_RETAINED,
  'lost-clean':
    'guarantees.md, partition/pause row: past the liveness timeout the node is reaped and closes its connections when back; only persistent sessions keep receiving',
  'lost-shared':
    'guarantees.md, limits: shares delivered to a member on a dead node and not acknowledged are lost with its clean session',
  'will-unexpected':
    "guarantees.md, partition row: past the liveness timeout its clients' wills are published although they may still be connected (known limitation)",
  late: RECOVERY,
};

/** Kinds each fault class does not promise, and why (the doc's words). */
export const ALLOWED: Record<FaultClass, Allowed> = {
  none: {},
  kill: {
    'lost-shared':
      'guarantees.md, node crash / QoS 1: shares delivered to a member (clean session) on the dead node and not acknowledged are lost',
    'order-shared': SHARED_ORDER,
    late: RECOVERY,
  },
  'pause-short': {
    late: 'guarantees.md, partition row: within the liveness timeout, as a blip (writes wait)',
  },
  'pause-long': BEYOND_LIVENESS,
  'partition-short': {
    late: 'guarantees.md, partition row: within the liveness timeout, as a blip',
    'retained-stale': STALE_RETAINED,
  },
  'partition-long': BEYOND_LIVENESS,
  'partition-client': {
    'lost-clean': 'guarantees.md promises nothing to a clean session whose own connection is cut',
    'lost-shared':
      'a shared member whose connection is cut takes messages with it (no doc row promises them)',
    'will-unexpected':
      'a DISCONNECT sent into a cut connection never arrives: the broker sees an abnormal end (CLUSTER.md 4)',
    late: RECOVERY,
  },
  'redis-restart-aof': {
    'will-duplicate': 'guarantees.md, Redis blip / wills: if Redis cannot confirm, at least once',
    late: RECOVERY,
  },
  'redis-restart-nopersist': {
    'lost-persistent':
      'guarantees.md, Redis restart without persistence: session queues at the restart are lost',
    'lost-clean': 'guarantees.md, Redis restart without persistence: inbox streams at the restart are lost',
    'lost-shared': 'guarantees.md, Redis restart without persistence: inbox streams at the restart are lost',
    'retained-stale': 'guarantees.md, Redis restart without persistence: all retained messages lost',
    'session-lost': 'guarantees.md, Redis restart without persistence: all persistent sessions lost',
    'will-missing': 'guarantees.md, Redis restart without persistence: stored wills lost',
    'will-duplicate': 'guarantees.md, Redis blip / wills: if Redis cannot confirm, at least once',
    late: RECOVERY,
  },
  'sentinel-failover': {
    // The verifier runs Sentinel with cluster.replicaAcks: 2 (every replica), as guarantees.md advises.
    order:
      'guarantees.md, Sentinel failover: a message held across the failover can arrive after later ones of its publisher (order is not promised across a Redis failover)',
    'order-shared':
      'guarantees.md, Sentinel failover: shares held across the failover can arrive after later ones',
    'retained-stale': 'guarantees.md, Sentinel failover: retained writes do not wait for replication',
    'will-missing':
      'guarantees.md, Sentinel failover: a will whose writes no replica confirmed for 30 s is given up',
    'will-duplicate':
      'guarantees.md, Sentinel failover: a will whose take no replica confirmed may be taken again elsewhere',
    late: RECOVERY,
  },
  'cluster-master-kill': {
    // The verifier runs Redis Cluster with cluster.replicaAcks: 1 (one replica per master).
    order:
      'guarantees.md, Redis Cluster master failover: messages retried across the failover can arrive after later ones (order is not promised across a Redis failover)',
    'order-shared':
      'guarantees.md, Redis Cluster master failover: shares retried across the failover can arrive after later ones',
    'retained-stale':
      'guarantees.md, Redis Cluster master failover: retained writes do not wait for replication',
    'will-missing':
      'guarantees.md, Redis Cluster master failover: a will whose writes no replica confirmed for 30 s is given up',
    'will-duplicate':
      'guarantees.md, Redis Cluster master failover: a will whose take no replica confirmed may be taken again elsewhere',
    late: RECOVERY,
  },
  // CLUSTER.md 9: liveness is judged on Redis time, not node clocks: skew changes nothing.
  'clock-skew': { late: RECOVERY },
  // CLUSTER.md 10 / guarantees.md slow consumer row: the others are neither stalled nor dropped.
  'slow-consumer': {
    'lost-slow':
      'guarantees.md, limits: a clean-session subscriber that cannot keep up with publishers on other nodes loses what passes mqtt.maxQueuedMessages (counted, queue_full); its neighbours lose nothing',
  },
  takeover: { late: RECOVERY },
};

/** Whether a violation of `kind` under `fault` breaks a promise of the docs. */
export function promised(fault: FaultClass, kind: ViolationKind): boolean {
  return ALLOWED[fault][kind] === undefined;
}
