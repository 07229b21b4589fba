/**
 * MQTT over TLS, optionally asking clients for a certificate, optionally behind a load balancer
 * speaking the PROXY protocol (the header comes before the TLS handshake, on the raw TCP stream).
 */
import net from 'node:net';
import tls from 'node:tls';
import { listenOn, stopAccepting } from './listen.js';
import { acceptProxied, type ProxyProtocolOptions } from './proxied.js';
import { SocketTransport } from './socket.js';
import { keepAlive } from './tcp.js';
import type { ConnectionHandler, Listener } from './types.js';

/** PEM material, already read from the files named in the config. */
export interface TlsCredentials {
  cert: Buffer;
  key: Buffer;
  /** CAs that client certificates are verified against; the system CAs when omitted. */
  ca?: Buffer;
  requestClientCert: boolean;
  /** Refuse clients whose certificate does not verify (only matters with requestClientCert). */
  rejectUnauthorized: boolean;
}

/** The certificate, key and CAs of `credentials`: what a running server's context is replaced with. */
export function secureContextOptions(credentials: TlsCredentials): tls.SecureContextOptions {
  return { cert: credentials.cert, key: credentials.key, ca: credentials.ca };
}

/** A listener whose certificate can be replaced while it runs (new handshakes get the new one). */
export interface RotatableTls {
  setCredentials(credentials: TlsCredentials): void;
}

/** Server options shared by the TLS and WSS listeners. */
export function tlsServerOptions(credentials: TlsCredentials): tls.TlsOptions {
  return {
    cert: credentials.cert,
    key: credentials.key,
    ca: credentials.ca,
    requestCert: credentials.requestClientCert,
    rejectUnauthorized: credentials.rejectUnauthorized,
    minVersion: 'TLSv1.2',
  };
}

export interface TlsListenerOptions {
  host: string;
  /** The port to bind; 0 binds an ephemeral port (the config layer uses 0 to mean "no listener"). */
  port: number;
  credentials: TlsCredentials;
  onConnection: ConnectionHandler;
  /** Server errors after listening. */
  onError?(err: Error): void;
  /** A handshake that failed (bad certificate, wrong protocol); the socket is already closed. */
  onHandshakeError?(err: Error, remoteAddress: string | undefined): void;
  /** Require a PROXY protocol header from a trusted proxy on every connection, before the handshake. */
  proxyProtocol?: ProxyProtocolOptions;
  /** TCP keep-alive probes after this much idle time, so dead peers are found; 0 or absent = off. */
  keepAliveMs?: number;
}

export class TlsListener implements Listener, RotatableTls {
  readonly kind = 'tls';
  private readonly server: tls.Server;
  /** With the PROXY protocol: the plain TCP server that accepts and reads the header. */
  private readonly front: net.Server | undefined;
  /**
   * Client addresses from PROXY headers of handshakes in progress, by the proxy side's address and
   * port (the TLS socket shares the TCP connection, so it reports the same pair).
   */
  private readonly proxied = new Map<string, string>();

  constructor(private readonly options: TlsListenerOptions) {
    const serverOptions = { ...tlsServerOptions(options.credentials), noDelay: true };
    this.server = tls.createServer(
      { ...serverOptions, ...(options.proxyProtocol ? {} : keepAlive(options.keepAliveMs)) },
      (socket) => {
        let client: string | undefined;
        if (options.proxyProtocol !== undefined) {
          const key = peerKey(socket);
          client = this.proxied.get(key);
          this.proxied.delete(key);
        }
        options.onConnection(new SocketTransport(this.kind, socket, client));
      },
    );
    this.server.on('tlsClientError', (err, socket) => {
      const client = options.proxyProtocol === undefined ? undefined : this.proxied.get(peerKey(socket));
      options.onHandshakeError?.(err, client ?? socket.remoteAddress);
    });
    const { proxyProtocol } = options;
    if (proxyProtocol === undefined) return;
    this.front = net.createServer({ noDelay: true, ...keepAlive(options.keepAliveMs) }, (raw) =>
      acceptProxied(raw, proxyProtocol, (socket, client) => {
        const key = peerKey(socket);
        this.proxied.set(key, client);
        socket.once('close', () => this.proxied.delete(key));
        // The TLS server takes the socket from here: it reads the bytes put back after the header.
        this.server.emit('connection', socket);
      }),
    );
  }

  listen(): Promise<number> {
    return listenOn(this.front ?? this.server, this.options.host, this.options.port, this.options.onError);
  }

  /** New handshakes use these; connections already open keep theirs. */
  setCredentials(credentials: TlsCredentials): void {
    this.server.setSecureContext(secureContextOptions(credentials));
  }

  close(): Promise<void> {
    return stopAccepting(this.front ?? this.server);
  }
}

function peerKey(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
