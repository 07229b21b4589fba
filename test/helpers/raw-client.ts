/**
 * A byte-level MQTT peer for tests: sends packets encoded by our codec (or raw bytes) over a real TCP
 * socket and hands back what the broker sends, decoded, in order. Waits on events, never on delays.
 */
import net from 'node:net';
import {
  decodeAll,
  encode,
  type Packet,
  PacketDecoder,
  type ProtocolVersion,
} from '../../src/protocol/index.js';

export class RawClient {
  readonly received: Packet[] = [];
  readonly closed: Promise<void>;
  private waiters: (() => void)[] = [];
  private readonly decoder: PacketDecoder;
  private isClosed = false;

  private constructor(
    readonly socket: net.Socket,
    public version: ProtocolVersion,
  ) {
    this.decoder = new PacketDecoder(
      (p) => {
        this.received.push(p);
        this.wake();
      },
      { version },
    );
    socket.on('data', (chunk) => this.decoder.push(chunk));
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress` picks the source address (another loopback address, say 127.0.0.2). */
  static async connect(
    port: number,
    version: ProtocolVersion = 4,
    host = '127.0.0.1',
    localAddress?: string,
  ): Promise<RawClient> {
    const socket = net.connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket, version);
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(packet: Packet): void {
    if (packet.type === 'connect') {
      this.version = packet.protocolVersion;
      this.decoder.version = packet.protocolVersion;
    }
    this.socket.write(encode(packet, this.version));
  }

  sendBytes(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  /** Next packet (optionally of a type, skipping others up to it), in arrival order. */
  async next<T extends Packet['type']>(type?: T, timeoutMs = 5000): Promise<Extract<Packet, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = type === undefined ? 0 : this.received.findIndex((p) => p.type === type);
      if (i >= 0 && this.received.length > 0)
        return this.received.splice(i, 1)[0] as Extract<Packet, { type: T }>;
      if (this.isClosed) throw new Error(`connection closed while waiting for ${type ?? 'a packet'}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${type ?? 'a packet'}; got ${this.received.map((p) => p.type)}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** CONNECT and wait for CONNACK. */
  async handshake(
    fields: Partial<Extract<Packet, { type: 'connect' }>> = {},
  ): Promise<Extract<Packet, { type: 'connack' }>> {
    const version = fields.protocolVersion ?? this.version;
    this.send({
      type: 'connect',
      protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clean: true,
      keepalive: 0,
      clientId: `raw-${Math.random().toString(36).slice(2, 10)}`,
      ...fields,
    });
    return this.next('connack');
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export { decodeAll };
