/**
 * MQTT 5 enhanced authentication (4.12) with SCRAM-SHA-256: the packet glue around the exchange in
 * auth/scram.ts.
 *
 *   CONNECT (method, client-first) → AUTH 0x18 (server-first) → AUTH 0x18 (client-final)
 *   → CONNACK 0x00 (server-final), or CONNACK 0x86 when the proof fails.
 *
 * Re-authentication (4.12.1): a connected client sends AUTH 0x19 (client-first) with the same method;
 * the same exchange follows and success is answered AUTH 0x00 (server-final). A failed
 * re-authentication, or one for another user, closes the connection with DISCONNECT 0x87.
 */
import { SCRAM_SHA_256, ScramServer } from '../auth/scram.js';
import {
  type AuthPacket,
  type ConnectPacket,
  encode,
  type Packet,
  ProtocolError,
  ReasonCode,
} from '../protocol/index.js';
import type { Channel } from './channel.js';
import { acceptConnect, refuseConnect } from './connect.js';

/** An exchange in progress on a channel. */
export interface EnhancedAuth {
  server: ScramServer;
  /** The CONNECT being authenticated; undefined for a re-authentication. */
  connect?: ConnectPacket;
}

/** The enhanced authentication methods this broker offers, given the configured hooks. */
export function supportsAuthMethod(ch: Channel, method: string): boolean {
  return method === SCRAM_SHA_256 && ch.ctx.auth.scramCredentials !== undefined;
}

function newServer(ch: Channel): ScramServer {
  const lookup = ch.ctx.auth.scramCredentials;
  return new ScramServer((user) => lookup?.(user));
}

function text(data: Buffer | undefined): string {
  return data === undefined ? '' : data.toString('utf8');
}

function sendAuth(ch: Channel, reasonCode: number, message: string): void {
  const packet: AuthPacket = {
    type: 'auth',
    reasonCode,
    properties: { authenticationMethod: ch.authMethod, authenticationData: Buffer.from(message, 'utf8') },
  };
  ch.write(encode(packet, 5));
}

function logFailure(ch: Channel, reason: string, reauth: boolean): void {
  // The event of every refused login (compose.ts), with the SCRAM step's reason as the detail.
  ch.ctx.logger.info({
    event: reauth ? 'auth.reauth_failed' : 'auth.login_failed',
    reason: 'scram_failed',
    detail: reason,
    method: ch.authMethod,
    clientId: ch.clientId,
    remote: ch.out.remoteAddress,
  });
}

/** CONNECT with a supported Authentication Method: answers the server-first message. */
export function startEnhancedAuth(ch: Channel, p: ConnectPacket): void {
  ch.authMethod = p.properties?.authenticationMethod;
  const server = newServer(ch);
  const step = server.start(text(p.properties?.authenticationData));
  if (!step.ok) {
    logFailure(ch, step.reason, false);
    refuseConnect(ch, ReasonCode.BadUserNameOrPassword);
    return;
  }
  ch.enhancedAuth = { server, connect: p };
  sendAuth(ch, ReasonCode.ContinueAuthentication, step.message);
}

/** The Authentication Method must stay the one of CONNECT [MQTT-4.12.0-5]. */
function checkMethod(ch: Channel, packet: AuthPacket): void {
  if (packet.properties?.authenticationMethod !== ch.authMethod)
    throw new ProtocolError('PROTOCOL_ERROR', 'AUTH with another authentication method than CONNECT');
}

/** A packet while CONNECT's exchange runs: only AUTH 0x18 (or DISCONNECT) may come before CONNACK. */
export function handleConnectingPacket(ch: Channel, packet: Packet): void {
  const pending = ch.enhancedAuth;
  if (pending === undefined) return;
  if (packet.type === 'disconnect') {
    ch.state = 'closed';
    ch.out.close();
    return;
  }
  if (packet.type !== 'auth')
    throw new ProtocolError('PROTOCOL_ERROR', `${packet.type} before CONNACK during enhanced authentication`);
  checkMethod(ch, packet);
  if (packet.reasonCode !== ReasonCode.ContinueAuthentication)
    throw new ProtocolError('PROTOCOL_ERROR', 'AUTH during CONNECT must be Continue authentication (0x18)');
  ch.enhancedAuth = undefined;
  const step = pending.server.finish(text(packet.properties?.authenticationData));
  if (!step.ok) {
    logFailure(ch, step.reason, false);
    refuseConnect(ch, ReasonCode.BadUserNameOrPassword);
    return;
  }
  // CONNACK carries the method and the server-final message [MQTT-4.12.0-5] (connackProperties).
  ch.authConnackData = Buffer.from(step.message, 'utf8');
  const p = pending.connect as ConnectPacket;
  // A step that waits (quota, cluster claim) holds and releases the input itself.
  acceptConnect(ch, p, { reasonCode: 0, username: step.username });
}

/** AUTH from a connected client: re-authentication [MQTT-4.12.1-1]. */
export function handleReauth(ch: Channel, packet: AuthPacket): void {
  if (ch.authMethod === undefined)
    // No enhanced authentication method is in use on this connection [MQTT-4.12.0-7].
    throw new ProtocolError('PROTOCOL_ERROR', 'AUTH without an authentication method');
  checkMethod(ch, packet);
  const data = text(packet.properties?.authenticationData);
  if (packet.reasonCode === ReasonCode.ReAuthenticate) {
    if (ch.enhancedAuth !== undefined)
      throw new ProtocolError('PROTOCOL_ERROR', 'Re-authenticate while a re-authentication runs');
    const server = newServer(ch);
    const step = server.start(data);
    if (!step.ok) {
      logFailure(ch, step.reason, true);
      ch.disconnect(ReasonCode.NotAuthorized, 'authentication failed');
      return;
    }
    ch.enhancedAuth = { server };
    sendAuth(ch, ReasonCode.ContinueAuthentication, step.message);
    return;
  }
  const pending = ch.enhancedAuth;
  if (packet.reasonCode !== ReasonCode.ContinueAuthentication || pending === undefined)
    throw new ProtocolError('PROTOCOL_ERROR', 'AUTH without a re-authentication in progress');
  ch.enhancedAuth = undefined;
  const step = pending.server.finish(data);
  if (!step.ok || step.username !== ch.username) {
    logFailure(ch, step.ok ? 'another user' : step.reason, true);
    ch.disconnect(ReasonCode.NotAuthorized, 'authentication failed');
    return;
  }
  sendAuth(ch, ReasonCode.Success, step.message);
}
