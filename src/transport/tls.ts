/** MQTT over TLS, optionally asking clients for a certificate. */
import tls from 'node:tls';
import { listenOn, stopAccepting } from './listen.js';
import { SocketTransport } from './socket.js';
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
}

export class TlsListener implements Listener {
  readonly kind = 'tls';
  private readonly server: tls.Server;

  constructor(private readonly options: TlsListenerOptions) {
    this.server = tls.createServer({ ...tlsServerOptions(options.credentials), noDelay: true }, (socket) => {
      options.onConnection(new SocketTransport(this.kind, socket));
    });
    this.server.on('tlsClientError', (err, socket) => options.onHandshakeError?.(err, socket.remoteAddress));
  }

  listen(): Promise<number> {
    return listenOn(this.server, this.options.host, this.options.port, this.options.onError);
  }

  close(): Promise<void> {
    return stopAccepting(this.server);
  }
}
