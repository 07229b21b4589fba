/**
 * The CONNECT flow (MQTT 3.1.4 / 5.0 3.1.4) as a list of steps: check the client identifier,
 * authenticate, take the session over, arm keep-alive and the will, answer CONNACK, then resume the
 * session's in-flight and queued messages.
 */
import { isUtf8 } from 'node:buffer';
import { type AuthDecision, isThenable, reasonCodeOf } from '../auth/types.js';
import type { StoredSession } from '../backend/types.js';
import { ClaimRefused } from '../limits/claim-gate.js';
import { forwardedProperties, type Message } from '../message.js';
import {
  type ConnackPacket,
  type ConnectPacket,
  encode,
  type Properties,
  ReasonCode,
} from '../protocol/index.js';
import { isValidTopicName } from '../topics/index.js';
import type { Channel } from './channel.js';
import type { PendingWill } from './context.js';
import { count } from './counting.js';
import { startEnhancedAuth, supportsAuthMethod } from './enhanced-auth.js';
import { isAuthFailure } from './refusal.js';
import { autoSubscribe } from './subscribe.js';
import { sendWindow } from './window.js';

/** Clean Session 0 in 3.x means the session lasts until the client cleans it: "never expires". */
const NEVER = 0xffffffff;

export function handleConnect(ch: Channel, p: ConnectPacket): void {
  ch.state = 'connecting';
  ch.version = p.protocolVersion;
  const refusal =
    checkConnectRate(ch) ??
    checkClientId(ch, p) ??
    checkBanned(ch, p.username) ??
    checkWill(ch, p) ??
    checkAuthMethod(ch, p);
  if (refusal !== undefined) {
    refuse(ch, refusal);
    return;
  }
  if (p.properties?.authenticationMethod !== undefined) {
    // MQTT 5 enhanced authentication (enhanced-auth.ts): AUTH packets until CONNACK.
    startEnhancedAuth(ch, p);
    return;
  }
  let decision: ReturnType<typeof ch.ctx.auth.authenticate>;
  try {
    decision = ch.ctx.auth.authenticate({
      clientId: ch.clientId,
      username: p.username,
      password: p.password,
      remoteAddress: ch.out.remoteAddress,
      transport: ch.out.transportKind,
      certificate: ch.out.peerCertificate?.(),
    });
  } catch (err) {
    // A throwing hook is refused like a rejecting one (CONNACK 0x88), not dropped without CONNACK.
    decision = Promise.reject(err);
  }
  if (!isThenable(decision)) {
    accept(ch, p, decision);
    return;
  }
  // Packets that arrive while the authenticator works wait in the connection.
  ch.out.holdInput(true);
  decision.then(
    (answer) => {
      if (ch.state !== 'connecting') return;
      // A step still waiting (quota, cluster claim) releases the input itself when it is done.
      if (accept(ch, p, answer)) ch.out.holdInput(false);
    },
    (err: unknown) => {
      ch.ctx.logger.error({ event: 'auth.error', clientId: ch.clientId, err: String(err) });
      if (ch.state === 'connecting') refuse(ch, ReasonCode.ServerUnavailable);
    },
  );
}

function checkClientId(ch: Channel, p: ConnectPacket): number | undefined {
  const id = p.clientId;
  if (id.length === 0) {
    // 3.1 requires an identifier; 3.1.1 allows an empty one only with Clean Session [MQTT-3.1.3-7] [MQTT-3.1.3-8].
    if (p.protocolVersion === 3 || (p.protocolVersion === 4 && !p.clean))
      return ReasonCode.ClientIdentifierNotValid;
    ch.clientId = ch.ctx.assignClientId(); // [MQTT-3.1.3-6]
    return undefined;
  }
  if (Buffer.byteLength(id) > ch.ctx.options.maxClientIdLength) return ReasonCode.ClientIdentifierNotValid;
  ch.clientId = id;
  return undefined;
}

function checkWill(ch: Channel, p: ConnectPacket): number | undefined {
  const w = p.will;
  if (w === undefined) return undefined;
  if (!isValidTopicName(w.topic) || w.topic.startsWith('$')) return ReasonCode.TopicNameInvalid;
  const o = ch.ctx.options;
  if (w.qos > o.maximumQoS) return ReasonCode.QoSNotSupported; // [MQTT-3.2.2-12]
  if (w.retain && !o.retainAvailable) return ReasonCode.RetainNotSupported; // [MQTT-3.2.2-13]
  if (w.properties?.payloadFormatIndicator === 1 && !isUtf8(w.payload))
    return ReasonCode.PayloadFormatInvalid;
  return undefined;
}

/** A banned client id, user name or address: CONNACK 0x8A Banned (3.x: 5 Not authorized). */
function checkBanned(ch: Channel, username: string | undefined): number | undefined {
  const ban = ch.ctx.banning.banOf(ch.clientId, username, ch.out.remoteAddress);
  if (ban === undefined) return undefined;
  ch.ctx.banning.refused++;
  ch.ctx.logger.info({ event: 'client.banned', clientId: ch.clientId, kind: ban.kind, reason: ban.reason });
  return ReasonCode.Banned;
}

/** limits.connectRatePerSecond: over the node's CONNECT rate, 0x9F (3.x: 3 Server unavailable). */
function checkConnectRate(ch: Channel): number | undefined {
  return ch.ctx.limits.admitConnect() ? undefined : ReasonCode.ConnectionRateExceeded;
}

function checkAuthMethod(ch: Channel, p: ConnectPacket): number | undefined {
  // A method the broker does not offer is refused rather than ignored [MQTT-4.12.0-1].
  const method = p.properties?.authenticationMethod;
  if (method !== undefined && !supportsAuthMethod(ch, method)) return ReasonCode.BadAuthenticationMethod;
  return undefined;
}

/** Refuses the CONNECT: the CONNACK (refusal.ts decides its code), then the close. */
function refuse(ch: Channel, reasonCode: number): void {
  ch.sendFinal({ kind: 'refuse', reasonCode });
  if (isAuthFailure(reasonCode)) ch.ctx.counters.authFailures++;
  ch.ctx.logger.info({
    event: 'client.connect_refused',
    clientId: ch.clientId,
    reasonCode,
    remote: ch.out.remoteAddress,
    username: ch.username,
  });
  ch.state = 'closed';
  ch.out.close();
}

/** Refuses the CONNECT with a CONNACK of `reasonCode` and closes (enhanced-auth.ts). */
export function refuseConnect(ch: Channel, reasonCode: number): void {
  refuse(ch, reasonCode);
}

/** Goes on after an authentication decided elsewhere (enhanced-auth.ts); as `accept`. */
export function acceptConnect(ch: Channel, p: ConnectPacket, decision: AuthDecision): boolean {
  return accept(ch, p, decision);
}

/** After authentication. True when done at once; false while a step waits (it releases the input). */
function accept(ch: Channel, p: ConnectPacket, decision: AuthDecision): boolean {
  const authCode = reasonCodeOf(decision);
  // The authenticator may name the client (a certificate's CN, a token's claim): ACLs use that name.
  ch.username = (typeof decision === 'object' ? decision.username : undefined) ?? p.username;
  if (authCode !== 0) {
    refuse(ch, authCode);
    return true;
  }
  // The authenticator named the client otherwise (a certificate's CN, a token's claim): that name's ban too.
  const renamed = ch.username !== p.username ? checkBanned(ch, ch.username) : undefined;
  if (renamed !== undefined) {
    refuse(ch, renamed);
    return true;
  }
  if (typeof decision === 'object') ch.permissions = decision.permissions;
  const quota = takeUserConnection(ch);
  if (quota === undefined) {
    claim(ch, p);
    return false;
  }
  ch.out.holdInput(true);
  quota.then(
    (ok) => {
      if (ch.state !== 'connecting') return; // closed meanwhile: transportClosed gave the slot back
      if (!ok) {
        ch.ctx.limits.hit('user_connections');
        refuse(ch, ReasonCode.QuotaExceeded);
        return;
      }
      claim(ch, p);
    },
    (err: unknown) => {
      ch.ctx.logger.warn({ event: 'quota.connection_failed', clientId: ch.clientId, err: String(err) });
      if (ch.state === 'connecting') refuse(ch, ReasonCode.ServerUnavailable);
    },
  );
  return false;
}

/**
 * limits.user.maxConnections: takes a connection slot of the client's username (cluster-wide when
 * clustered); undefined when there is no quota or no username. The slot is the channel's from the
 * call on (transportClosed gives it back), so a connection closing meanwhile cannot leak it.
 */
function takeUserConnection(ch: Channel): Promise<boolean> | undefined {
  const max = ch.ctx.limits.options.user.maxConnections;
  const quotas = ch.ctx.quotas;
  const user = ch.username;
  if (max === 0 || quotas === undefined || user === undefined) return undefined;
  const id = ch.clientId;
  const taken = quotas.acquireConnection(user, id, max);
  ch.userSlot = { user, id, taken };
  return taken;
}

/** First the one owner of this client id, in the whole cluster [MQTT-3.1.4-3]: input waits for it. */
function claim(ch: Channel, p: ConnectPacket): void {
  // The will is stored by the claim, before CONNACK (guarantee 4 holds from the CONNACK on).
  const will = p.will === undefined ? undefined : makeWill(p.will, ch.clientId);
  ch.out.holdInput(true);
  const expiry = sessionExpiry(ch, p);
  // Admission control: a bounded number of claims at a time; past the queue, come back later.
  const claimed = ch.ctx.limits.claims.run(
    () => ch.ctx.claimOwnership(ch, p.clean, expiry, will),
    () => ch.state !== 'connecting',
  );
  claimed.then(
    (claimed) => {
      ch.epoch = claimed.epoch;
      if (ch.state !== 'connecting') return;
      if (claimed.superseded) {
        // Another connection with this id claimed it after us: it wins (takeover is last-come).
        refuse(ch, ReasonCode.ServerBusy);
        return;
      }
      establish(ch, p, claimed.stored, will);
      ch.out.holdInput(false);
    },
    (err: unknown) => {
      if (err instanceof ClaimRefused) {
        if (ch.state !== 'connecting') return;
        // Told to come back: 0x89 Server busy (3.x: 3 Server unavailable).
        ch.ctx.limits.hit('claim_queue');
        refuse(ch, ReasonCode.ServerBusy);
        return;
      }
      ch.ctx.logger.warn({ event: 'cluster.claim_failed', clientId: ch.clientId, err: String(err) });
      if (ch.state === 'connecting') refuse(ch, ReasonCode.ServerUnavailable);
    },
  );
}

/** Session lifetime: 3.x Clean Session 0 keeps the session; 5.0 uses Session Expiry Interval. */
function sessionExpiry(ch: Channel, p: ConnectPacket): number {
  const expiry = p.protocolVersion === 5 ? (p.properties?.sessionExpiryInterval ?? 0) : p.clean ? 0 : NEVER;
  return Math.min(expiry, ch.ctx.options.maxSessionExpirySeconds);
}

/**
 * Everything after authentication and ownership: session, keep-alive, will, CONNACK, resume.
 * `stored`: the session the store keeps for this connection, loaded by its claim (none for expiry 0).
 */
function establish(ch: Channel, p: ConnectPacket, stored?: StoredSession, will?: PendingWill): void {
  const o = ch.ctx.options;
  const props = p.properties;

  const expiry = sessionExpiry(ch, p);
  ch.connectExpirySeconds = expiry;

  ch.window = sendWindow(o, props?.receiveMaximum ?? 0xffff, ch.ctx.clock.now());
  if (props?.maximumPacketSize !== undefined) ch.clientMaxPacketSize = props.maximumPacketSize;
  if (props?.topicAliasMaximum !== undefined) ch.clientTopicAliasMaximum = props.topicAliasMaximum;
  if (props?.requestProblemInformation === 0) ch.problemInformation = false;

  // Keep alive: a broker maximum overrides the client's wish (MQTT 5 Server Keep Alive).
  let keepalive = p.keepalive;
  let serverKeepAlive: number | undefined;
  if (o.maxKeepAliveSeconds > 0 && (keepalive === 0 || keepalive > o.maxKeepAliveSeconds)) {
    keepalive = o.maxKeepAliveSeconds;
    serverKeepAlive = keepalive;
  }

  ch.will = will;

  const { session, present } = ch.ctx.openSession(ch, expiry, stored);
  ch.session = session;
  ch.state = 'connected';
  // [MQTT-3.1.2-22] 1.5 times the keep alive, in milliseconds.
  ch.out.setKeepAlive(keepalive * 1500);

  const connack: ConnackPacket = { type: 'connack', sessionPresent: present, reasonCode: 0 };
  if (ch.version === 5) connack.properties = connackProperties(ch, p, serverKeepAlive);
  count(ch.ctx.counters.connacks, `${ch.version} 0x00`);
  ch.write(encode(connack, ch.version));
  ch.ctx.logger.debug({
    event: 'client.connected',
    clientId: ch.clientId,
    version: ch.version,
    clean: p.clean,
    sessionPresent: present,
    keepalive,
    remote: ch.out.remoteAddress,
    transport: ch.out.transportKind,
    username: ch.username,
    passwordLength: p.password?.length,
  });
  session.resume(ch);
  ch.ctx.banning.connected(ch.clientId);
  // After CONNACK (the first packet the client gets) and the session's resent messages.
  if (ch.ctx.autoSubscribe.length > 0) autoSubscribe(ch);
}

function connackProperties(ch: Channel, p: ConnectPacket, serverKeepAlive: number | undefined): Properties {
  const o = ch.ctx.options;
  const props: Properties = {
    receiveMaximum: o.receiveMaximum,
    topicAliasMaximum: o.topicAliasMaximum,
    maximumPacketSize: o.maxPacketSizeBytes,
  };
  if (o.maximumQoS < 2) props.maximumQoS = o.maximumQoS as 0 | 1;
  if (!o.retainAvailable) props.retainAvailable = 0;
  if (!o.wildcardSubscriptionAvailable) props.wildcardSubscriptionAvailable = 0;
  if (!o.subscriptionIdentifiersAvailable) props.subscriptionIdentifiersAvailable = 0;
  if (!o.sharedSubscriptionAvailable) props.sharedSubscriptionAvailable = 0;
  if (serverKeepAlive !== undefined) props.serverKeepAlive = serverKeepAlive;
  if (p.clientId.length === 0) props.assignedClientIdentifier = ch.clientId; // [MQTT-3.2.2-16]
  if (ch.authConnackData !== undefined) {
    // Enhanced authentication: the CONNECT's method and the server-final message (MQTT 5 4.12).
    props.authenticationMethod = ch.authMethod;
    props.authenticationData = ch.authConnackData;
    ch.authConnackData = undefined;
  }
  const asked = p.properties?.sessionExpiryInterval ?? 0;
  if (ch.connectExpirySeconds !== asked) props.sessionExpiryInterval = ch.connectExpirySeconds;
  return props;
}

function makeWill(w: NonNullable<ConnectPacket['will']>, clientId: string): PendingWill {
  const message: Message = {
    topic: w.topic,
    payload: Buffer.from(w.payload),
    qos: w.qos,
    retain: w.retain,
    properties: forwardedProperties(w.properties),
    origin: clientId,
  };
  return {
    message,
    delaySeconds: w.properties?.willDelayInterval ?? 0,
    expirySeconds: w.properties?.messageExpiryInterval,
  };
}
