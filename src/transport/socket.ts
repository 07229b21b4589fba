/**
 * Transport over a net.Socket: plain TCP, or TLS (a TLSSocket is a net.Socket).
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Transport, TransportEvents } from './types.js';

/** The certificate of a TLS peer, when it sent one that verified against the CA; undefined otherwise. */
export function verifiedPeerCertificate(socket: net.Socket | Duplex): PeerCertificate | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (tls.authorized !== true || typeof tls.getPeerCertificate !== 'function') return undefined;
  const cert = tls.getPeerCertificate();
  // An empty object means no certificate.
  return cert !== null && typeof cert === 'object' && Object.keys(cert).length > 0 ? cert : undefined;
}

/**
 * The socket's listeners are these shared functions (Node calls them with the socket as `this`),
 * and the events they go to hang on the socket: no closures per connection (#13.3, memory per idle
 * connection).
 */
const kEvents = Symbol('shoal.transportEvents');
const kEarlyError = Symbol('shoal.earlyError');
type Tagged = net.Socket & { [kEvents]?: TransportEvents; [kEarlyError]?: Error };

function onData(this: Tagged, chunk: Buffer): void {
  this[kEvents]!.data(chunk);
}
function onDrain(this: Tagged): void {
  this[kEvents]!.drain();
}
function onError(this: Tagged, err: Error): void {
  this[kEvents]!.error(err);
  this.destroy();
}
function onClose(this: Tagged): void {
  this[kEvents]!.close();
}
/** Until bind, only a guard: an error on an unbound socket would otherwise crash the process. */
function onEarlyError(this: Tagged, err: Error): void {
  this[kEarlyError] = err;
  this.destroy();
}

export class SocketTransport implements Transport {
  readonly remoteAddress: string;
  private bound = false;

  constructor(
    readonly kind: string,
    private readonly socket: net.Socket,
    /** The client's address when a proxy names it (PROXY protocol); the socket's peer otherwise. */
    remoteAddress?: string,
  ) {
    this.remoteAddress = remoteAddress ?? socket.remoteAddress ?? 'unknown';
    // Data listeners wait for bind, so nothing is read before the connection layer is ready.
    socket.on('error', onEarlyError);
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  peerCertificate(): PeerCertificate | undefined {
    return verifiedPeerCertificate(this.socket);
  }

  writeBatch(chunks: Buffer[]): void {
    const { socket } = this;
    if (!socket.writable) return;
    if (chunks.length === 1) {
      socket.write(chunks[0]);
      return;
    }
    // Corked writes leave as one writev: one syscall for the batch.
    socket.cork();
    for (const chunk of chunks) socket.write(chunk);
    socket.uncork();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  bind(events: TransportEvents): void {
    if (this.bound) throw new Error('SocketTransport.bind called twice');
    this.bound = true;
    const socket = this.socket as Tagged;
    socket.off('error', onEarlyError);
    // The socket may have failed or closed between accept and bind: report that now.
    const early = socket[kEarlyError];
    if (early !== undefined) events.error(early);
    if (socket.closed) {
      events.close();
      return;
    }
    // Called as methods of `events`, so it may be an object whose methods use `this`.
    socket[kEvents] = events;
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('error', onError);
    socket.on('close', onClose); // a socket closes once
    // A socket handed on paused (after a PROXY header) does not start flowing on its own.
    socket.resume();
  }
}
