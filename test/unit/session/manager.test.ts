/**
 * The SessionManager (src/session/manager.ts) through its ports: a FakeClock, real Sessions, a
 * recorder for the subscription index and the publish pipeline, and connections that act as a
 * channel does (a server-side close reports the will at once). Claims run on a MemoryHub: one
 * node of it is the single-node default, several a cluster.
 * The same behaviour over sockets: test/integration/broker/session.test.ts, will.test.ts,
 * memory-cluster.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { MemoryHub } from '../../../src/backend/memory/cluster-hub.js';
import type { StoredSession } from '../../../src/backend/types.js';
import type { SubscriptionOptions } from '../../../src/message.js';
import { createLogger } from '../../../src/observability/logger.js';
import { ReasonCode } from '../../../src/protocol/index.js';
import {
  type OpenedSession,
  type PendingWill,
  type SessionCluster,
  SessionManager,
  type SessionOwner,
} from '../../../src/session/manager.js';
import type { Session } from '../../../src/session/session.js';
import { settle } from '../../helpers/channel-harness.js';
import { idleHandlers } from '../../helpers/cluster-handlers.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const NEVER = 0xffffffff;
const options: SubscriptionOptions = { qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 };

/** One node's manager with its ports recorded. */
function node(clock: FakeClock, cluster: SessionCluster) {
  const published: string[] = [];
  const left: string[] = [];
  const joined: string[] = [];
  const counters = { takeovers: 0, sessionsCreated: 0, sessionsResumed: 0, sessionsDiscarded: 0 };
  const manager: SessionManager<Connection> = new SessionManager<Connection>({
    options: { maxQueuedMessages: 100 },
    clock,
    logger: createLogger('silent'),
    cluster,
    subscriptions: {
      joinShared: (_session, filter, group) => joined.push(`${group} ${filter}`),
      leave: (_session, raw) => left.push(raw),
    },
    publish: (message, accepted) => {
      published.push(message.payload.toString());
      accepted?.();
      return 1;
    },
    counters,
    dropped: () => undefined,
  });
  const connection = (clientId: string) => new Connection(clientId, manager);
  return { manager, published, left, joined, counters, connection };
}

/** A connection as the manager sees a channel. */
class Connection implements SessionOwner {
  epoch = 0;
  will: PendingWill | undefined;
  session: Session | null = null;
  closed = false;
  readonly disconnects: number[] = [];
  private connected = false;

  constructor(
    readonly clientId: string,
    private readonly manager: SessionManager<Connection>,
  ) {}

  /** CONNECT accepted: the session opens (with a will armed), as connect.ts does after its claim. */
  open(
    expirySeconds: number,
    o: { will?: string; delaySeconds?: number; stored?: StoredSession } = {},
  ): OpenedSession {
    this.will = o.will === undefined ? undefined : willOf(o.will, o.delaySeconds ?? 0);
    const opened = this.manager.openSession(this, expirySeconds, o.stored);
    this.session = opened.session;
    this.connected = true;
    return opened;
  }

  /** CONNECT: the claim (which stores the will), then the session opens with what it loaded. */
  async connect(
    clean: boolean,
    expirySeconds: number,
    o: { will?: string; delaySeconds?: number } = {},
  ): Promise<OpenedSession> {
    const will = o.will === undefined ? undefined : willOf(o.will, o.delaySeconds ?? 0);
    const claimed = await this.manager.claimOwnership(this, clean, expirySeconds, will);
    this.epoch = claimed.epoch;
    return this.open(expirySeconds, { ...o, stored: claimed.stored });
  }

  /** The connection ends without a DISCONNECT: the will goes to the manager. */
  lost(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.connected) this.manager.connectionClosed(this, this.will);
    this.will = undefined;
  }

  disconnect(reasonCode: number): void {
    if (this.closed) return;
    this.disconnects.push(reasonCode);
    this.lost();
  }
}

function willOf(payload: string, delaySeconds: number): PendingWill {
  const message = { topic: 'will/t', payload: Buffer.from(payload), qos: 0 as const, retain: false };
  return { message, delaySeconds };
}

describe('SessionManager on one node (a one-node MemoryHub, as the single-node default)', () => {
  async function single() {
    const clock = new FakeClock();
    const hub = new MemoryHub(clock);
    const backend = hub.node('A');
    const n = node(clock, backend);
    await backend.start(
      idleHandlers({
        release: (clientId, epoch) => n.manager.releaseClient(clientId, epoch),
        publishWill: (will) => n.manager.publishWill(will),
        serves: (clientId) => n.manager.serves(clientId),
      }),
    );
    /** Whether the store keeps a session for `clientId`. */
    const kept = (clientId: string) => hub.sessions.sessions.has(clientId);
    /** Client ids whose stored subscriptions match `topic`. */
    const routed = (topic: string) => {
      const ids: string[] = [];
      backend.sessions.matchSessions(topic, (id) => ids.push(id));
      return ids;
    };
    return { clock, hub, backend, kept, routed, ...n };
  }

  it('[MQTT-3.1.2-4] [MQTT-3.1.2-8] Clean Start ends the old session: its stored subscriptions go, its delayed will goes out at once', async () => {
    const n = await single();
    const first = n.connection('c');
    await first.connect(false, 300, { will: 'w1', delaySeconds: 60 });
    await n.backend.sessions.subscribe('c', first.epoch, 'a/+', options, true);
    first.lost();
    n.clock.advance(10_000);
    expect(n.published).toEqual([]);
    expect(n.routed('a/x')).toEqual(['c']);

    const opened = await n.connection('c').connect(true, 300);
    expect(opened.present).toBe(false);
    expect(opened.session.subscriptions.size).toBe(0);
    expect(n.routed('a/x')).toEqual([]);
    expect(n.published).toEqual(['w1']);
    n.clock.advance(120_000);
    await settle();
    expect(n.published).toEqual(['w1']); // once
  });

  it('[MQTT-3.1.3-9] a resume within the will delay cancels the will', async () => {
    const n = await single();
    const first = n.connection('c');
    await first.connect(false, 300, { will: 'w1', delaySeconds: 60 });
    first.lost();
    n.clock.advance(59_000);

    const opened = await n.connection('c').connect(false, 300);
    expect(opened.present).toBe(true);
    n.clock.advance(600_000);
    await settle();
    expect(n.published).toEqual([]);
  });

  it('[MQTT-3.1.2-8] the will waits for its delay, or for the end of a session that expires sooner', async () => {
    const n = await single();
    const delayed = n.connection('delayed');
    await delayed.connect(false, 300, { will: 'after-delay', delaySeconds: 20 });
    delayed.lost();
    const expiring = n.connection('expiring');
    await expiring.connect(false, 10, { will: 'at-expiry', delaySeconds: 60 });
    expiring.lost();

    n.clock.advance(9_999);
    await settle();
    expect(n.published).toEqual([]);
    n.clock.advance(1);
    await settle();
    expect(n.published).toEqual(['at-expiry']);
    expect(n.kept('expiring')).toBe(false);
    n.clock.advance(10_000);
    await settle();
    expect(n.published).toEqual(['at-expiry', 'after-delay']);
    expect(n.kept('delayed')).toBe(true);
  });

  it('[MQTT-3.1.2-23] an offline session is kept for its Session Expiry Interval, then ends', async () => {
    const n = await single();
    const first = n.connection('c');
    await first.connect(false, 30);
    await n.backend.sessions.subscribe('c', first.epoch, 'a/+', options, true);
    first.lost();
    await settle();
    expect(n.manager.online.has('c')).toBe(false);
    expect(n.manager.sessions.has('c')).toBe(false); // kept by the store, nothing of it here

    n.clock.advance(29_999);
    expect(n.kept('c')).toBe(true);
    expect(n.routed('a/b')).toEqual(['c']);
    n.clock.advance(1);
    expect(n.kept('c')).toBe(false);
    expect(n.routed('a/b')).toEqual([]);
    expect((await n.connection('c').connect(false, 30)).present).toBe(false);
  });

  it('[MQTT-3.1.2-23] a resume before the interval passed keeps the session past the old deadline', async () => {
    const n = await single();
    const first = n.connection('c');
    await first.connect(false, 30);
    first.lost();
    await settle();
    n.clock.advance(20_000);
    const again = n.connection('c');
    expect((await again.connect(false, 30)).present).toBe(true);
    n.clock.advance(60_000);
    expect(n.kept('c')).toBe(true);
    again.lost();
    await settle();
    n.clock.advance(30_000);
    expect(n.kept('c')).toBe(false);
  });

  it('(3.1.1 [MQTT-3.1.2-6]) a session with expiry 0 is not stored and ends with its connection; one that never expires stays', async () => {
    const n = await single();
    const clean = n.connection('clean');
    const opened = await clean.connect(true, 0);
    expect(opened.session.durable).toBeUndefined();
    expect(n.kept('clean')).toBe(false);
    opened.session.setSubscription('a/+', options);
    clean.lost();
    expect(n.manager.sessions.has('clean')).toBe(false);
    expect(n.left).toEqual(['a/+']);

    const kept = n.connection('kept');
    expect((await kept.connect(false, NEVER)).session.durable).toBeDefined();
    const timers = n.clock.pending;
    kept.lost();
    await settle();
    expect(n.clock.pending).toBe(timers); // no timer for a session that never expires
    n.clock.advance(365 * 24 * 3600_000);
    expect(n.kept('kept')).toBe(true);
  });

  it('[MQTT-3.1.4-3] a second connection with the id takes over: the first gets 0x8E and its will goes out, the session moves on', async () => {
    const n = await single();
    const first = n.connection('c');
    await first.connect(false, 300, { will: 'w1' });
    const second = n.connection('c');
    const opened = await second.connect(false, 300);

    expect(first.disconnects).toEqual([ReasonCode.SessionTakenOver]);
    await settle();
    expect(n.published).toEqual(['w1']);
    expect(n.counters.takeovers).toBe(1);
    expect(opened.present).toBe(true);
    expect(opened.session.durable?.epoch).toBe(second.epoch);
    expect(n.manager.online.get('c')).toBe(second);
  });

  it('while the node drains, a closing connection leaves no will behind; stop cancels the pending ones', async () => {
    const n = await single();
    const before = n.connection('before');
    await before.connect(false, 300, { will: 'w-before', delaySeconds: 60 });
    before.lost();
    await settle();

    n.manager.beginDrain();
    const drained = n.connection('drained');
    await drained.connect(false, 300, { will: 'w-drained' });
    drained.lost();
    await settle();
    n.manager.stop();
    n.clock.advance(600_000);
    await settle();
    expect(n.published).toEqual([]);
  });
});

describe('SessionManager in a cluster (MemoryHub)', () => {
  function cluster() {
    const clock = new FakeClock();
    const hub = new MemoryHub(clock);
    const start = async (id: string) => {
      const backend = hub.node(id);
      const n = node(clock, backend);
      await backend.start(
        idleHandlers({
          release: (clientId, epoch) => n.manager.releaseClient(clientId, epoch),
          publishWill: (will) => n.manager.publishWill(will),
          serves: (clientId) => n.manager.serves(clientId),
        }),
      );
      return { ...n, backend };
    };
    return { hub, start };
  }

  it('[MQTT-3.1.4-3] a CONNECT on another node takes the id over: the older connection closes with 0x8E', async () => {
    const { start } = cluster();
    const a = await start('A');
    const b = await start('B');
    const first = a.connection('c');
    first.epoch = (await a.manager.claimOwnership(first, false, 0)).epoch;
    first.open(0);

    const second = b.connection('c');
    const claimed = await b.manager.claimOwnership(second, false, 0);
    expect(claimed).toEqual({ epoch: first.epoch + 1, stored: undefined, superseded: false });
    expect(first.disconnects).toEqual([ReasonCode.SessionTakenOver]);
    expect(b.counters.takeovers).toBe(1);
    // A notice for an epoch not later than the connection's own closes nothing.
    second.epoch = claimed.epoch;
    second.open(0);
    b.manager.releaseClient('c', second.epoch);
    expect(second.disconnects).toEqual([]);
  });

  it('a notice of a later claim that reaches a CONNECT still claiming makes its claim resolve superseded', async () => {
    const { start } = cluster();
    const a = await start('A');
    const connecting = a.connection('c');
    const claim = a.manager.claimOwnership(connecting, false, 0);
    a.manager.releaseClient('c', 2); // another node's claim, after this one's (epoch 1)
    expect(await claim).toEqual({ epoch: 1, stored: undefined, superseded: true });
  });

  it('serves the id from the start of the claim until a turn after it settled; a CONNECT that closed meanwhile gives the ownership back', async () => {
    const { hub, start } = cluster();
    const a = await start('A');
    const connecting = a.connection('c');
    const claim = a.manager.claimOwnership(connecting, false, 0);
    expect(a.manager.serves('c')).toBe(true);
    connecting.lost();
    await claim;
    expect(hub.owners.has('c')).toBe(false);
    expect(a.manager.serves('c')).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(a.manager.serves('c')).toBe(false);
  });

  it('(guarantee 4) the will of a CONNECT is stored before its claim resolves, so before CONNACK; one whose CONNECT closed meanwhile is dropped', async () => {
    const { hub, start } = cluster();
    const a = await start('A');
    const will = {
      message: { topic: 'w', payload: Buffer.from('bye'), qos: 1 as const, retain: false },
      delaySeconds: 0,
    };
    const claimed = await a.manager.claimOwnership(a.connection('c'), false, 0, will);
    expect(hub.owners.get('c')?.epoch).toBe(claimed.epoch);
    expect(hub.owners.get('c')?.will?.message.payload.toString()).toBe('bye');

    const leaving = a.connection('d');
    const claim = a.manager.claimOwnership(leaving, false, 0, will);
    // Closed while its will is being stored (the claim itself is done at once on a memory hub).
    await Promise.resolve();
    leaving.lost();
    await claim;
    await new Promise((resolve) => setImmediate(resolve));
    expect(hub.owners.get('d')?.will).toBeUndefined();
  });

  it('[MQTT-3.1.2-5] a stored session resumes through its claim: Session Present, its shared subscriptions join the index', async () => {
    const { start } = cluster();
    const a = await start('A');
    const b = await start('B');
    const first = a.connection('c');
    const created = await a.manager.claimOwnership(first, false, 300);
    expect(created.stored?.present).toBe(false);
    first.epoch = created.epoch;
    first.open(300, { stored: created.stored });
    await a.backend.sessions.subscribe('c', first.epoch, 't/+', options, true);
    await a.backend.sessions.subscribe('c', first.epoch, '$share/g/s/#', options, false);
    first.lost();
    expect(a.manager.sessions.has('c')).toBe(false); // offline in the store, nothing of it on A
    expect(a.left).toEqual([]);

    const second = b.connection('c');
    const resumed = await b.manager.claimOwnership(second, false, 300);
    second.epoch = resumed.epoch;
    const opened = second.open(300, { stored: resumed.stored });
    expect(opened.present).toBe(true);
    expect(opened.session.durable?.epoch).toBe(second.epoch);
    expect([...opened.session.subscriptions.keys()]).toEqual(['t/+', '$share/g/s/#']);
    expect(b.joined).toEqual(['g s/#']);
  });
});
