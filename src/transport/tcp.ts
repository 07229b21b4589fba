/** MQTT over plain TCP, optionally behind a load balancer speaking the PROXY protocol. */
import net from 'node:net';
import { listenOn, stopAccepting } from './listen.js';
import { acceptProxied, type ProxyProtocolOptions } from './proxied.js';
import { SocketTransport } from './socket.js';
import type { ConnectionHandler, Listener } from './types.js';

export interface TcpListenerOptions {
  host: string;
  /** The port to bind; 0 binds an ephemeral port (the config layer uses 0 to mean "no listener"). */
  port: number;
  onConnection: ConnectionHandler;
  /** Server errors after listening (an accept failing with EMFILE, say). */
  onError?(err: Error): void;
  /** Require a PROXY protocol header from a trusted proxy on every connection. */
  proxyProtocol?: ProxyProtocolOptions;
  /** TCP keep-alive probes after this much idle time, so dead peers are found; 0 or absent = off. */
  keepAliveMs?: number;
}

export class TcpListener implements Listener {
  readonly kind = 'tcp';
  private readonly server: net.Server;

  constructor(private readonly options: TcpListenerOptions) {
    const { proxyProtocol } = options;
    // Nagle would hold small packets (PUBACK, PINGRESP) back by up to 40 ms.
    this.server = net.createServer({ noDelay: true, ...keepAlive(options.keepAliveMs) }, (socket) => {
      if (proxyProtocol === undefined) {
        options.onConnection(new SocketTransport(this.kind, socket));
        return;
      }
      acceptProxied(socket, proxyProtocol, (s, client) =>
        options.onConnection(new SocketTransport(this.kind, s, client)),
      );
    });
  }

  listen(): Promise<number> {
    return listenOn(this.server, this.options.host, this.options.port, this.options.onError);
  }

  close(): Promise<void> {
    return stopAccepting(this.server);
  }
}

/** net.Server keep-alive options: probes start after `ms` of silence. */
export function keepAlive(ms: number | undefined): { keepAlive?: boolean; keepAliveInitialDelay?: number } {
  return ms === undefined || ms <= 0 ? {} : { keepAlive: true, keepAliveInitialDelay: ms };
}
