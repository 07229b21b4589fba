/**
 * What the connection layer needs from a byte stream, whatever carries it (TCP, TLS, WebSocket).
 * Each listener adapts its sockets to this interface; nothing above transport/ knows which one it is.
 */
import type { PeerCertificate } from 'node:tls';

export interface Transport {
  /** Listener name for logs and metrics: 'tcp', 'tls', 'ws', 'wss'. */
  readonly kind: string;
  readonly remoteAddress: string;
  /**
   * TLS and WSS: the client's certificate, only when it verified against the configured CA
   * (undefined for plain transports, for clients that sent none, and for unverified ones).
   */
  peerCertificate?(): PeerCertificate | undefined;
  /** Bytes accepted for writing but not yet handed to the OS (backpressure signal). */
  readonly bufferedBytes: number;
  /** Writes several buffers as one batch (one syscall / one WebSocket frame where possible). */
  writeBatch(chunks: Buffer[]): void;
  pause(): void;
  resume(): void;
  /** Flushes what is queued, then closes. */
  end(): void;
  /** Closes at once. */
  destroy(): void;
  /** Registers the callbacks (called once by the connection layer). */
  bind(events: TransportEvents): void;
}

export interface TransportEvents {
  data(chunk: Buffer): void;
  drain(): void;
  close(): void;
  error(err: Error): void;
}

export type ConnectionHandler = (transport: Transport) => void;

export interface Listener {
  readonly kind: string;
  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number>;
  /** Stops accepting new connections (open ones are the broker's to close). */
  close(): Promise<void>;
}
