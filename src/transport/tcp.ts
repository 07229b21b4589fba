/** MQTT over plain TCP. */
import net from 'node:net';
import { listenOn, stopAccepting } from './listen.js';
import { SocketTransport } from './socket.js';
import type { ConnectionHandler, Listener } from './types.js';

export interface TcpListenerOptions {
  host: string;
  /** The port to bind; 0 binds an ephemeral port (the config layer uses 0 to mean "no listener"). */
  port: number;
  onConnection: ConnectionHandler;
  /** Server errors after listening (an accept failing with EMFILE, say). */
  onError?(err: Error): void;
}

export class TcpListener implements Listener {
  readonly kind = 'tcp';
  private readonly server: net.Server;

  constructor(private readonly options: TcpListenerOptions) {
    // Nagle would hold small packets (PUBACK, PINGRESP) back by up to 40 ms.
    this.server = net.createServer({ noDelay: true }, (socket) => {
      options.onConnection(new SocketTransport(this.kind, socket));
    });
  }

  listen(): Promise<number> {
    return listenOn(this.server, this.options.host, this.options.port, this.options.onError);
  }

  close(): Promise<void> {
    return stopAccepting(this.server);
  }
}
