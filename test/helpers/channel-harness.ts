/**
 * Drives channels (src/channel/channel.ts) without sockets, the EMQX `emqx_channel_SUITE` way: a
 * real Broker (one node, its own memory hub) on a FakeClock, and peers that hand a channel decoded
 * packets and record what it returns through its ChannelOutput port: the packets it writes (decoded
 * again) and its actions (keep-alive deadline, input hold, throttle, close). Time moves only through
 * `clock.advance`; a wait is a bounded number of event-loop turns for the store's answers (a
 * claim, a fetch), never a delay.
 */
import { standaloneNode } from '../../src/backend/memory/cluster-hub.js';
import { Broker } from '../../src/broker/broker.js';
import { type BrokerOptions, defaultBrokerOptions } from '../../src/broker/options.js';
import { Channel, type ChannelOutput } from '../../src/channel/channel.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  type ConnackPacket,
  type ConnectPacket,
  type Packet,
  PacketDecoder,
  type Properties,
  ProtocolError,
  type ProtocolVersion,
  type PublishPacket,
  type QoS,
  type Will,
} from '../../src/protocol/index.js';
import { FakeClock } from './fake-clock.js';

/** What a channel asked of its connection besides writing packets. */
export type ChannelAction =
  | { type: 'keepAlive'; ms: number }
  | { type: 'hold'; hold: boolean }
  | { type: 'throttle' }
  | { type: 'release' }
  | { type: 'close' }
  | { type: 'closeWhen' };

/** Event-loop turns a wait may take before it fails (the store answers within a few). */
const TURNS = 200;

export interface ChannelWorld {
  clock: FakeClock;
  broker: Broker;
  /** A new client of this broker, speaking protocol level `version`. */
  peer(version?: ProtocolVersion): TestPeer;
  close(): Promise<void>;
}

export async function channelWorld(options: Partial<BrokerOptions> = {}): Promise<ChannelWorld> {
  const clock = new FakeClock();
  const o = { ...defaultBrokerOptions, sysIntervalSeconds: 0, ...options };
  const broker = new Broker({
    options: o,
    clock,
    logger: createLogger('silent'),
    version: 'test',
    cluster: standaloneNode(clock, 'test', o.maxQueuedMessages),
  });
  await broker.start();
  const peers: TestPeer[] = [];
  return {
    clock,
    broker,
    peer(version: ProtocolVersion = 5) {
      const p = new TestPeer(broker, version);
      peers.push(p);
      return p;
    },
    async close() {
      for (const p of peers) p.lose();
      await broker.shutdown();
    },
  };
}

/** One client: the channel under test and the recorder of what it returns. */
export class TestPeer implements ChannelOutput {
  readonly remoteAddress = '127.0.0.1:40000';
  readonly transportKind = 'tcp';
  /** Bytes "written but not sent": raise it to make the client look slow. */
  bufferedBytes = 0;
  readonly channel: Channel;
  /** Every packet the channel wrote, decoded, in order. */
  readonly received: Packet[] = [];
  readonly actions: ChannelAction[] = [];
  /** The channel asked for the close (close, or closeWhen once settled). */
  closed = false;
  private read = 0;
  private readonly decoder: PacketDecoder;
  private pending: Packet[] = [];
  private inputHeld = false;
  private throttles = 0;
  private gone = false;
  private nextId = 1;

  constructor(
    ctx: Broker,
    readonly version: ProtocolVersion,
  ) {
    this.channel = new Channel(ctx, this);
    this.decoder = new PacketDecoder((p) => this.received.push(p), { version });
  }

  // ---- ChannelOutput -----------------------------------------------------------------------------

  write(bytes: Buffer): void {
    if (!this.gone) this.decoder.push(bytes);
  }

  writePublish(header: Buffer, payload: Buffer): void {
    if (!this.gone) this.decoder.push(Buffer.concat([header, payload]));
  }

  setKeepAlive(ms: number): void {
    this.actions.push({ type: 'keepAlive', ms });
  }

  holdInput(hold: boolean): void {
    this.actions.push({ type: 'hold', hold });
    this.inputHeld = hold;
    if (!hold) this.drain();
  }

  throttle(): () => void {
    this.actions.push({ type: 'throttle' });
    this.throttles++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.actions.push({ type: 'release' });
      if (--this.throttles === 0) this.drain();
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.actions.push({ type: 'close' });
    this.lose();
  }

  closeWhen(settled: Promise<unknown>): void {
    this.actions.push({ type: 'closeWhen' });
    settled.then(
      () => this.close(),
      () => this.close(),
    );
  }

  // ---- the client side ---------------------------------------------------------------------------

  /** Hands the channel a packet, as the connection does once decoded (held while input is held). */
  send(packet: Packet): void {
    if (this.gone) return;
    this.pending.push(packet);
    this.drain();
  }

  /** The transport is gone (the socket dropped: no DISCONNECT). */
  lose(): void {
    if (this.gone) return;
    this.gone = true;
    this.pending = [];
    this.channel.transportClosed();
  }

  /** Sends CONNECT and waits for the CONNACK. */
  async connect(o: Partial<ConnectPacket> & { will?: Will } = {}): Promise<ConnackPacket> {
    this.send({
      type: 'connect',
      protocolName: this.version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.version,
      clean: true,
      keepalive: 0,
      clientId: '',
      ...o,
    });
    return (await this.next('connack')) as ConnackPacket;
  }

  /** SUBSCRIBE to each filter at `qos` (options as given) and waits for the SUBACK's codes. */
  async subscribe(
    filters: string | string[],
    qos: QoS = 0,
    options: { noLocal?: boolean; retainAsPublished?: boolean; properties?: Properties } = {},
  ): Promise<number[]> {
    const packetId = this.id();
    this.send({
      type: 'subscribe',
      packetId,
      subscriptions: (Array.isArray(filters) ? filters : [filters]).map((topic) => ({
        topic,
        qos,
        noLocal: options.noLocal ?? false,
        retainAsPublished: options.retainAsPublished ?? false,
        retainHandling: 0,
      })),
      properties: options.properties,
    });
    const ack = await this.next('suback');
    return ack.type === 'suback' ? ack.reasonCodes : [];
  }

  /** Sends a PUBLISH (a packet id for QoS > 0 unless given); returns the packet sent. */
  publish(topic: string, payload: string, qos: QoS = 0, o: Partial<PublishPacket> = {}): PublishPacket {
    const packet: PublishPacket = {
      type: 'publish',
      topic,
      payload: Buffer.from(payload),
      qos,
      retain: false,
      dup: false,
      ...(qos > 0 ? { packetId: this.id() } : {}),
      ...o,
    };
    this.send(packet);
    return packet;
  }

  /** The next packet the channel wrote that this peer has not read yet (of `type`, skipping others). */
  async next<T extends Packet['type']>(type?: T): Promise<Extract<Packet, { type: T }>> {
    for (let turn = 0; turn < TURNS; turn++) {
      while (this.read < this.received.length) {
        const p = this.received[this.read++];
        if (type === undefined || p.type === type) return p as Extract<Packet, { type: T }>;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    throw new Error(`no ${type ?? 'packet'} after ${TURNS} turns; got ${this.received.map((p) => p.type)}`);
  }

  /** Packets written but not read yet, after the store's answers of this turn have come. */
  async unread(): Promise<Packet[]> {
    await settle();
    const rest = this.received.slice(this.read);
    this.read = this.received.length;
    return rest;
  }

  /** Waits until the channel asked for the close. */
  async whenClosed(): Promise<void> {
    for (let turn = 0; turn < TURNS && !this.closed; turn++) await new Promise((r) => setImmediate(r));
    if (!this.closed) throw new Error(`not closed after ${TURNS} turns`);
  }

  private id(): number {
    const id = this.nextId;
    this.nextId = (id % 0xffff) + 1;
    return id;
  }

  private drain(): void {
    while (this.pending.length > 0 && !this.inputHeld && this.throttles === 0 && !this.gone) {
      const packet = this.pending.shift() as Packet;
      try {
        this.channel.handle(packet);
      } catch (err) {
        // What the connection does with a violation a flow throws (connection.ts protocolFailure).
        if (!(err instanceof ProtocolError)) throw err;
        this.channel.fail(err);
      }
    }
  }
}

/** Lets the store's answers of this turn (a turn later, as over Redis) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}
