/**
 * MQTT over WebSocket (and over secure WebSocket when given TLS credentials): an HTTP(S) server
 * that upgrades requests for one path, negotiates the MQTT subprotocol and adapts each WebSocket
 * to a Transport. MQTT packets travel in binary frames; a frame may hold part of a packet or several.
 */
import http, { STATUS_CODES } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { PeerCertificate } from 'node:tls';
import { type WebSocket, WebSocketServer } from 'ws';
import { type AddressList, forwardedClient } from './address.js';
import { listenOn, stopAccepting } from './listen.js';
import { verifiedPeerCertificate } from './socket.js';
import { keepAlive } from './tcp.js';
import { type RotatableTls, secureContextOptions, type TlsCredentials, tlsServerOptions } from './tls.js';
import type { ConnectionHandler, Listener, Transport, TransportEvents } from './types.js';

/** Subprotocols we speak: `mqtt` (3.1.1 and 5.0) and `mqttv3.1` (3.1). */
export const MQTT_SUBPROTOCOLS: readonly string[] = ['mqtt', 'mqttv3.1'];

/** The first offered subprotocol we speak, or false when none is. */
export function pickSubprotocol(offered: Iterable<string>): string | false {
  for (const protocol of offered) {
    if (MQTT_SUBPROTOCOLS.includes(protocol)) return protocol;
  }
  return false;
}

const OPEN = 1; // WebSocket.OPEN
const CLOSED = 3; // WebSocket.CLOSED
const BINARY = { binary: true } as const;

class WebSocketTransport implements Transport {
  private bound = false;
  private earlyError: Error | undefined;

  constructor(
    readonly kind: string,
    private readonly ws: WebSocket,
    /** The upgraded socket: its 'drain' is the WebSocket's, as frames are written straight through. */
    private readonly socket: Duplex,
    readonly remoteAddress: string,
  ) {
    // ws emits 'message' whether or not anyone listens: hold reading until the connection layer binds.
    ws.pause();
    ws.on('error', this.onEarlyError);
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  peerCertificate(): PeerCertificate | undefined {
    return verifiedPeerCertificate(this.socket);
  }

  writeBatch(chunks: Buffer[]): void {
    if (this.ws.readyState !== OPEN) return;
    this.ws.send(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), BINARY);
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /** Sends a Close frame after what is queued; ws ends the socket when the peer answers. */
  end(): void {
    this.ws.close(1000);
  }

  destroy(): void {
    this.ws.terminate();
  }

  bind(events: TransportEvents): void {
    if (this.bound) throw new Error('WebSocketTransport.bind called twice');
    this.bound = true;
    const { ws } = this;
    ws.off('error', this.onEarlyError);
    // The WebSocket may have failed or closed between the upgrade and bind: report that now.
    if (this.earlyError !== undefined) events.error(this.earlyError);
    if (ws.readyState === CLOSED) {
      events.close();
      return;
    }
    ws.on('message', (data, isBinary) => {
      if (ws.readyState !== OPEN) return;
      if (!isBinary) {
        // [MQTT-6.0.0-1] a text frame closes the connection.
        events.error(new Error('WebSocket text frame: MQTT data must be sent in binary frames'));
        ws.close(1003);
        return;
      }
      // binaryType 'nodebuffer' (the default): a Buffer, fragments already joined.
      events.data(data as Buffer);
    });
    this.socket.on('drain', () => events.drain());
    ws.on('error', (err) => {
      events.error(err);
      ws.terminate();
    });
    ws.once('close', () => events.close());
    ws.resume();
  }

  private readonly onEarlyError = (err: Error): void => {
    this.earlyError = err;
    this.ws.terminate();
  };
}

export interface WebSocketListenerOptions {
  host: string;
  /** The port to bind; 0 binds an ephemeral port (the config layer uses 0 to mean "no listener"). */
  port: number;
  /** The only path upgraded, e.g. '/mqtt'. */
  path: string;
  /** Largest WebSocket message accepted (ws closes the connection with 1009 above it). */
  maxPayloadBytes: number;
  /** Serve WSS (HTTPS) with these; plain WS when omitted. */
  credentials?: TlsCredentials;
  onConnection: ConnectionHandler;
  onError?(err: Error): void;
  onHandshakeError?(err: Error, remoteAddress: string | undefined): void;
  /** Proxies whose X-Forwarded-For header names the client; the header is ignored from anyone else. */
  trustedProxies?: AddressList;
  /** TCP keep-alive probes after this much idle time, so dead peers are found; 0 or absent = off. */
  keepAliveMs?: number;
}

export class WebSocketListener implements Listener, RotatableTls {
  readonly kind: 'ws' | 'wss';
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;

  constructor(private readonly options: WebSocketListenerOptions) {
    this.kind = options.credentials ? 'wss' : 'ws';
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxPayloadBytes,
      handleProtocols: (offered) => pickSubprotocol(offered),
    });
    const onRequest: http.RequestListener = (req, res) => {
      const onPath = pathOf(req.url) === options.path;
      res.writeHead(onPath ? 426 : 404, onPath ? { upgrade: 'websocket', connection: 'Upgrade' } : {});
      res.end(onPath ? 'MQTT over WebSocket: send an Upgrade request\n' : 'not found\n');
    };
    const socketOptions = keepAlive(options.keepAliveMs);
    this.server = options.credentials
      ? https.createServer({ ...tlsServerOptions(options.credentials), ...socketOptions }, onRequest)
      : http.createServer(socketOptions, onRequest);
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    if (options.credentials) {
      this.server.on('tlsClientError', (err: Error, socket: { remoteAddress?: string }) =>
        options.onHandshakeError?.(err, socket.remoteAddress),
      );
    }
  }

  listen(): Promise<number> {
    return listenOn(this.server, this.options.host, this.options.port, this.options.onError);
  }

  /** WSS: new handshakes use these; connections already open keep theirs. (Plain WS: nothing to do.) */
  setCredentials(credentials: TlsCredentials): void {
    if (this.server instanceof https.Server) this.server.setSecureContext(secureContextOptions(credentials));
  }

  close(): Promise<void> {
    const stopped = stopAccepting(this.server);
    this.server.closeIdleConnections();
    return stopped;
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (pathOf(req.url) !== this.options.path) {
      refuse(socket, 404, 'not found');
      return;
    }
    const offered = req.headers['sec-websocket-protocol'];
    if (offered !== undefined && pickSubprotocol(offered.split(',').map((p) => p.trim())) === false) {
      // A client that offers subprotocols expects one back; none of its offers is MQTT.
      refuse(socket, 400, `no supported subprotocol (${MQTT_SUBPROTOCOLS.join(', ')})`);
      return;
    }
    // Without a Sec-WebSocket-Protocol header the connection is accepted: many clients omit it.
    const peer = req.socket.remoteAddress ?? 'unknown';
    const { trustedProxies } = this.options;
    const remoteAddress =
      trustedProxies === undefined || trustedProxies.size === 0
        ? peer
        : forwardedClient(peer, req.headers['x-forwarded-for'], trustedProxies);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.options.onConnection(new WebSocketTransport(this.kind, ws, socket, remoteAddress));
    });
  }
}

function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?', 1)[0];
}

function refuse(socket: Duplex, status: number, message: string): void {
  socket.on('error', () => {});
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
        `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
    );
  }
  socket.destroy();
}
