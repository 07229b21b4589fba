/**
 * The PROXY protocol front door of the TCP and TLS listeners: a new socket must come from a trusted
 * proxy (any other peer is closed at once) and begin with a PROXY header within the header timeout
 * (otherwise it is closed). The header is consumed; the bytes after it are put back on the socket,
 * and the socket is handed on with the client address the header names.
 */
import type net from 'node:net';
import type { Clock, TimerHandle } from '../clock.js';
import type { AddressList } from './address.js';
import { PROXY_V2_MAX_LENGTH, parseProxyHeader } from './proxy-protocol.js';

export type ProxyRefusal = 'untrusted' | 'invalid' | 'timeout';

export interface ProxyProtocolOptions {
  /** Peers allowed to connect; each must send a PROXY header first. */
  trusted: AddressList;
  /** How long a trusted peer has to send the whole header. */
  headerTimeoutMs: number;
  clock: Clock;
  /** A socket closed before it reached the broker (counted and logged by the caller). */
  onRefused?(reason: ProxyRefusal, peer: string, detail: string): void;
}

/**
 * Reads the PROXY header off `socket`, then calls `next` with the socket (paused, the bytes after
 * the header unshifted onto it) and the client address: the header's source, or the socket's peer
 * for a LOCAL/UNKNOWN header.
 */
export function acceptProxied(
  socket: net.Socket,
  options: ProxyProtocolOptions,
  next: (socket: net.Socket, clientAddress: string) => void,
): void {
  const peer = socket.remoteAddress ?? 'unknown';
  socket.on('error', ignore);
  if (!options.trusted.has(socket.remoteAddress)) {
    socket.destroy();
    options.onRefused?.('untrusted', peer, 'peer is not a trusted proxy');
    return;
  }
  let buf: Buffer = Buffer.alloc(0);
  const stop = () => {
    timer.cancel();
    socket.off('data', onData);
    socket.off('close', onClose);
  };
  const refuse = (reason: ProxyRefusal, detail: string) => {
    stop();
    socket.destroy();
    options.onRefused?.(reason, peer, detail);
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let header: ReturnType<typeof parseProxyHeader>;
    try {
      header = parseProxyHeader(buf);
    } catch (err) {
      refuse('invalid', (err as Error).message);
      return;
    }
    if (header === undefined) {
      // parseProxyHeader refuses an overlong v1 line itself; v2 declares its length up front.
      if (buf.length > PROXY_V2_MAX_LENGTH) refuse('invalid', 'header too long');
      return;
    }
    stop();
    socket.off('error', ignore);
    socket.pause();
    if (buf.length > header.length) socket.unshift(buf.subarray(header.length));
    next(socket, header.source?.address ?? peer);
  };
  const onClose = () => timer.cancel();
  const timer: TimerHandle = options.clock.setTimeout(
    () => refuse('timeout', `no complete PROXY header within ${options.headerTimeoutMs} ms`),
    options.headerTimeoutMs,
  );
  socket.on('data', onData);
  socket.once('close', onClose);
}

function ignore(): void {}
