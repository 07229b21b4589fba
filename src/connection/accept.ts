/**
 * Where a transport becomes a connection: the composition root (server.ts) hands every listener
 * this function, so the broker never builds connections itself (it only admits and counts them).
 */
import type { ChannelContext } from '../channel/context.js';
import type { Transport } from '../transport/types.js';
import { Connection } from './connection.js';

/** What the acceptor needs of the broker: the channel's context, admission and counting. */
export interface ConnectionHost extends ChannelContext {
  /** False while draining or at maxConnections: the socket is closed before anything is read. */
  admits(): boolean;
  attach(connection: Connection): void;
}

/** A listener's `onConnection` for `host`. */
export function acceptor(host: ConnectionHost): (transport: Transport) => void {
  return (transport) => {
    if (!host.admits()) {
      transport.destroy();
      return;
    }
    host.attach(new Connection(transport, host));
  };
}
