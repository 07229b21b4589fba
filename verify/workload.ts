/**
 * The verifier's workload: mqtt.js clients (publishers at QoS 0/1/2, persistent v3.1.1 and v5
 * subscribers, clean subscribers, a $share group, retained writers and readers, will clients that end
 * abnormally or with DISCONNECT, a will watcher, an optional slow consumer). Every operation goes into
 * the History. Each actor keeps one current connection and opens a new one when it closes, until
 * the workload stops; a takeover opens a new one without closing the old.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { type CloseHow, decodePayload, encodePayload, type History } from './history.js';
import type { Rng } from './rng.js';

export interface WorkloadOptions {
  /** Topic prefix of this segment (`v/<segment>`). */
  prefix: string;
  balancerUrl: string;
  /** Direct URLs of the nodes (through their client proxies). */
  nodeUrls: string[];
  rng: Rng;
  publishers: number;
  /** Publishes per second per publisher. */
  rate: number;
  padding: number;
  slowConsumer: boolean;
  /** MQTT 5 allowed (Aedes 1.x speaks only 3.1.1: every actor then uses 3.1.1). */
  v5: boolean;
}

interface ActorSpec {
  name: string;
  persistent: boolean;
  version: 4 | 5;
  subscribe?: { filter: string; qos: 0 | 1 | 2 }[];
  slow?: boolean;
  /** Connect through the balancer (true) or directly to a node (rotating). */
  balancer: boolean;
}

let connSeq = 0;

/**
 * An actor's QoS 2 state outlives each mqtt.js instance (MQTT 4.1: the client keeps its session):
 * mqtt.js closes its stores when a client ends, so this one ignores close.
 */
class SessionStore extends mqtt.Store {
  override close(cb?: () => void): this {
    cb?.();
    return this;
  }
}

/** One logical MQTT client (a client id) and its successive connections. */
export class Actor {
  current: MqttClient | undefined;
  currentConn = '';
  private readonly store = new SessionStore();
  private attempts = 0;
  private subscribed = false;
  stopped = false;
  private readonly how = new Map<MqttClient, CloseHow>();
  /** The current connection's QoS 1/2 publishes sent and not yet acknowledged (packet id -> id). */
  private sent = new Map<number, string>();

  constructor(
    readonly spec: ActorSpec,
    private readonly w: Workload,
  ) {}

  get clientId(): string {
    return `${this.w.opts.prefix.replaceAll('/', '-')}-${this.spec.name}`;
  }

  get connected(): boolean {
    return this.current?.connected === true;
  }

  /** Publishes of the current connection still waiting for PUBACK / PUBREC. */
  get unacknowledged(): number {
    return this.current?.connected === true ? this.sent.size : 0;
  }

  /** Opens a new connection (the old one, if any, is left to be taken over). */
  open(will?: { topic: string }): MqttClient {
    const h = this.w.history;
    const conn = `${this.spec.name}.${++connSeq}`;
    const { opts } = this.w;
    const via = this.spec.balancer ? 'balancer' : this.attempts++ % opts.nodeUrls.length;
    const url = via === 'balancer' ? opts.balancerUrl : opts.nodeUrls[via];
    const version = opts.v5 ? this.spec.version : 4;
    const expiry = this.spec.persistent ? (version === 5 ? 300 : Number.POSITIVE_INFINITY) : 0;
    const willId = `will:${conn}`;
    h.add({
      type: 'connect',
      conn,
      client: this.clientId,
      persistent: this.spec.persistent,
      protocolVersion: version,
      sessionExpirySeconds: expiry,
      via,
      will: will === undefined ? undefined : { id: willId, topic: will.topic },
      slow: this.spec.slow,
    });
    const client = mqtt.connect(url, {
      clientId: this.clientId,
      protocolVersion: version,
      clean: !this.spec.persistent,
      properties: version === 5 && this.spec.persistent ? { sessionExpiryInterval: 300 } : undefined,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      keepalive: 5,
      incomingStore: this.store,
      will:
        will === undefined
          ? undefined
          : { topic: will.topic, payload: Buffer.from(encodePayload(willId)), qos: 2, retain: false },
    });
    this.current = client;
    this.currentConn = conn;
    let acked = false;
    const sent = new Map<number, string>();
    this.sent = sent;
    client.on('error', () => undefined);
    client.on('connect', (connack) => {
      acked = true;
      h.add({ type: 'connack', conn, client: this.clientId, sessionPresent: connack.sessionPresent });
      if (
        this.spec.subscribe !== undefined &&
        (!this.spec.persistent || !connack.sessionPresent || !this.subscribed)
      ) {
        const filters = this.spec.subscribe.map((s) => s.filter);
        h.add({ type: 'subscribe', conn, client: this.clientId, filters });
        client.subscribe(
          Object.fromEntries(this.spec.subscribe.map((s) => [s.filter, { qos: s.qos }])),
          (err, granted) => {
            if (err !== null && err !== undefined) return;
            this.subscribed = true;
            h.add({
              type: 'suback',
              conn,
              client: this.clientId,
              filters,
              codes: (granted ?? []).map((g) => g.qos),
            });
          },
        );
      }
    });
    client.on('packetsend', (p) => {
      if (p.cmd !== 'publish' || p.qos === 0 || p.messageId === undefined) return;
      const id = decodePayload(p.payload as Buffer);
      if (id !== undefined) sent.set(p.messageId, id);
    });
    client.on('packetreceive', (p) => {
      if (p.cmd !== 'puback' && p.cmd !== 'pubrec') return;
      const id = p.messageId === undefined ? undefined : sent.get(p.messageId);
      if (id === undefined) return;
      sent.delete(p.messageId as number);
      h.add({ type: 'ack', conn, client: this.clientId, id, ok: (p.reasonCode ?? 0) < 0x80 });
    });
    client.on('message', (topic, payload, packet) => {
      const id = decodePayload(payload);
      if (id === undefined) return;
      h.add({
        type: 'receive',
        conn,
        client: this.clientId,
        id,
        topic,
        qos: packet.qos,
        dup: packet.dup,
        retain: packet.retain,
      });
    });
    client.once('close', () => {
      if (!acked)
        h.add({ type: 'connect-failed', conn, client: this.clientId, error: 'closed before CONNACK' });
      h.add({ type: 'close', conn, client: this.clientId, how: this.how.get(client) ?? 'lost' });
      client.end(true);
      if (client === this.current && !this.stopped)
        this.w.later(200 + this.w.opts.rng.int(300), () => this.reopen());
    });
    return client;
  }

  private reopen(): void {
    if (this.stopped || this.connected) return;
    this.open(this.willTopic);
  }

  willTopic: { topic: string } | undefined;

  publish(topic: string, id: string, qos: 0 | 1 | 2, retain = false): void {
    const c = this.current;
    if (c?.connected !== true) return;
    this.w.history.add({
      type: 'publish',
      conn: this.currentConn,
      client: this.clientId,
      id,
      topic,
      qos,
      retain,
    });
    c.publish(topic, encodePayload(id, this.w.opts.padding), { qos, retain });
  }

  /** Ends the current connection with DISCONNECT or by destroying the socket (no reconnect). */
  end(wanted: 'disconnect' | 'destroyed'): void {
    this.stopped = true;
    const c = this.current;
    if (c === undefined) return;
    // Before its CONNACK a client cannot send DISCONNECT (mqtt.js never sends it then): its socket
    // is destroyed instead, and the history says so (a will is then due, not forbidden).
    const how = wanted === 'disconnect' && !c.connected ? 'destroyed' : wanted;
    this.how.set(c, how);
    if (how === 'destroyed') c.stream.destroy();
    else c.end(false);
  }

  /** Stops reading the socket for `ms` (a slow consumer). */
  stall(ms: number): void {
    const s = this.current?.stream;
    if (s === undefined) return;
    s.pause();
    this.w.later(ms, () => s.resume());
  }
}

/** All actors of one segment and their timers. */
export class Workload {
  readonly actors: Actor[] = [];
  readonly persistent: Actor[] = [];
  readonly clean: Actor[] = [];
  slow: Actor | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private publishing = false;
  private seq = 0;

  constructor(
    readonly history: History,
    readonly opts: WorkloadOptions,
  ) {}

  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private actor(spec: ActorSpec): Actor {
    const a = new Actor(spec, this);
    this.actors.push(a);
    return a;
  }

  /** Connects every actor and waits (bounded) until the subscribers have their SUBACKs. */
  async start(): Promise<void> {
    const p = this.opts.prefix;
    const all = [{ filter: `${p}/m/#`, qos: 2 as const }];
    this.persistent.push(
      this.actor({ name: 'ps5a', persistent: true, version: 5, subscribe: all, balancer: true }),
      this.actor({ name: 'ps4', persistent: true, version: 4, subscribe: all, balancer: false }),
      this.actor({ name: 'ps5b', persistent: true, version: 5, subscribe: all, balancer: false }),
    );
    this.clean.push(
      this.actor({ name: 'cs1', persistent: false, version: 5, subscribe: all, balancer: true }),
      this.actor({ name: 'cs2', persistent: false, version: 4, subscribe: all, balancer: false }),
    );
    for (const g of ['g1', 'g2'])
      this.actor({
        name: g,
        persistent: false,
        version: 5,
        subscribe: [{ filter: `$share/g/${p}/s/#`, qos: 1 }],
        balancer: g === 'g1',
      });
    this.actor({
      name: 'willw',
      persistent: true,
      version: 5,
      subscribe: [{ filter: `${p}/w/#`, qos: 2 }],
      balancer: false,
    });
    if (this.opts.slowConsumer)
      this.slow = this.actor({
        name: 'slow',
        persistent: false,
        version: 5,
        subscribe: [{ filter: `${p}/m/#`, qos: 1 }],
        slow: true,
        balancer: false,
      });
    const pubs = Array.from({ length: this.opts.publishers }, (_, i) =>
      this.actor({ name: `pub${i}`, persistent: false, version: 5, balancer: i % 2 === 0 }),
    );
    const retainer = this.actor({ name: 'ret', persistent: false, version: 5, balancer: true });
    for (const a of this.actors) a.open();
    await waitUntil(() => this.actors.every((a) => a.connected), 20_000);
    this.publishing = true;
    const interval = Math.max(5, Math.round(1000 / this.opts.rate));
    for (const pub of pubs) {
      let own = 0;
      this.loop(interval, () => {
        // QoS and shared-ness turn per publisher, so every publisher sends every kind.
        const qos = (own % 3) as 0 | 1 | 2;
        const shared = own++ % 4 === 3;
        const n = ++this.seq;
        pub.publish(`${p}/${shared ? 's' : 'm'}/${pub.spec.name}/q${qos}`, `${pub.spec.name}:${n}`, qos);
      });
    }
    let r = 0;
    this.loop(400, () => retainer.publish(`${p}/r/${r % 2}`, `ret:${++r}`, 1, true));
    this.loop(1_000, () => this.readRetained(`${p}/r/${this.opts.rng.int(2)}`));
    for (let i = 0; i < 2; i++) this.willCycle(i);
  }

  private loop(ms: number, fn: () => void): void {
    const tick = () => {
      if (!this.publishing) return;
      fn();
      this.later(ms, tick);
    };
    this.later(ms, tick);
  }

  private readCount = 0;

  /** A fresh clean connection subscribes to one retained topic and leaves after a second. */
  private readRetained(topic: string): void {
    const a = this.actor({
      name: `rr${++this.readCount}`,
      persistent: false,
      version: 5,
      subscribe: [{ filter: topic, qos: 1 }],
      balancer: true,
    });
    a.stopped = true;
    a.open();
    this.later(1_500, () => a.end('disconnect'));
  }

  private willCount = 0;

  /** A will client lives 1-2 s and ends abnormally or with DISCONNECT, then the next one starts. */
  private willCycle(slot: number): void {
    if (!this.publishing) return;
    const a = this.actor({
      name: `will${slot}x${++this.willCount}`,
      persistent: false,
      version: 5,
      balancer: slot === 0,
    });
    a.stopped = true;
    a.open({ topic: `${this.opts.prefix}/w/${a.spec.name}` });
    this.later(1_000 + this.opts.rng.int(1_000), () => {
      a.end(this.opts.rng.int(2) === 0 ? 'destroyed' : 'disconnect');
      this.later(200, () => this.willCycle(slot));
    });
  }

  stopPublishing(): void {
    this.publishing = false;
  }

  /**
   * Publishes sent on open connections and not yet acknowledged. The settle waits for them too: one
   * acknowledged after the subscribers were closed would be counted lost although it is queued.
   */
  unacknowledged(): number {
    let n = 0;
    for (const a of this.actors) n += a.unacknowledged;
    return n;
  }

  /** Ends every connection with DISCONNECT and clears the timers. */
  async close(): Promise<void> {
    this.publishing = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const a of this.actors) if (a.current?.connected) a.end('disconnect');
    for (const a of this.actors) a.stopped = true;
    await waitUntil(() => this.actors.every((a) => !a.connected), 5_000).catch(() => undefined);
    for (const a of this.actors) a.current?.end(true);
  }
}

/** Polls `cond` every 50 ms; rejects after `ms`. */
export async function waitUntil(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
