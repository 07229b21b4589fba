/**
 * The per-connection MQTT state machine. It takes decoded packets from its connection and turns them
 * into session and broker operations; outbound it encodes what the session hands it. The flows live
 * in their own files (connect.ts, publish.ts, subscribe.ts); this file owns the state, the dispatch
 * and the outbound PUBLISH path.
 */
import type { PeerCertificate } from 'node:tls';
import type { TopicPermissions } from '../auth/types.js';
import { FencedError } from '../backend/types.js';
import { ClientLimiter } from '../limits/client.js';
import type { Delivery, Message } from '../message.js';
import { remainingExpirySeconds } from '../message.js';
import {
  type DisconnectPacket,
  type EncodedPublish,
  encode,
  encodeAck,
  encodePublishHeader,
  headerWithPacketId,
  type Packet,
  PacketCode,
  type Properties,
  ProtocolError,
  type ProtocolVersion,
  ReasonCode,
} from '../protocol/index.js';
import type { SessionOwner } from '../session/manager.js';
import type { Session, SessionLink } from '../session/session.js';
import { handleConnect } from './connect.js';
import type { ChannelContext, PendingWill } from './context.js';
import { closeReason, codeLabel, count } from './counting.js';
import { type EnhancedAuth, handleConnectingPacket, handleReauth } from './enhanced-auth.js';
import { handlePuback, handlePubcomp, handlePublish, handlePubrec, handlePubrel } from './publish.js';
import { type Ending, finalPacket } from './refusal.js';
import { handleSubscribe, handleUnsubscribe } from './subscribe.js';
import { inflightCost, type SendWindow, sendWindow } from './window.js';

/** What the channel needs from its connection (implemented by connection/connection.ts). */
export interface ChannelOutput {
  readonly remoteAddress: string;
  readonly transportKind: string;
  /** The TLS client certificate, only when it verified against the configured CA. */
  peerCertificate?(): PeerCertificate | undefined;
  /** Bytes written but not yet sent. */
  readonly bufferedBytes: number;
  write(bytes: Buffer): void;
  writePublish(header: Buffer, payload: Buffer): void;
  /** Enforces keep-alive: close when nothing arrives for `ms` (0 disables) [MQTT-3.1.2-22]. */
  setKeepAlive(ms: number): void;
  /** Delivery of further packets waits until resume (used while an async CONNECT step runs). */
  holdInput(hold: boolean): void;
  /** Stops reading from the client until the returned release is called. */
  throttle(): () => void;
  /** Flushes pending writes, then closes. */
  close(): void;
  /** Closes (as close()) once `settled` settles, or after a bounded wait if it takes longer. */
  closeWhen(settled: Promise<unknown>): void;
}

export interface PendingAck {
  type: 'puback' | 'pubrec';
  packetId: number;
  reasonCode: number;
  ready: boolean;
}

export type ChannelState = 'awaiting-connect' | 'connecting' | 'connected' | 'closed';

export class Channel implements SessionLink, SessionOwner {
  state: ChannelState = 'awaiting-connect';
  version: ProtocolVersion = 4;
  clientId = '';
  username: string | undefined;
  /** What the client's credential allows (a JWT's ACL claim), handed to the authorize hooks. */
  permissions: TopicPermissions | undefined;
  session: Session | null = null;
  will: PendingWill | undefined;
  /** This connection's fencing token for its client id, from its claim (0 until it resolves). */
  epoch = 0;
  /** limits.user.maxConnections: the connection slot this channel asked for (given back on close). */
  userSlot: { user: string; id: string; taken: Promise<boolean> } | undefined;
  /** Session Expiry Interval asked for at CONNECT (for the DISCONNECT rule of MQTT 5 3.14.2.2.2). */
  connectExpirySeconds = 0;
  /** MQTT 5 enhanced authentication: the CONNECT's Authentication Method (enhanced-auth.ts). */
  authMethod: string | undefined;
  /** The enhanced authentication exchange in progress, if any. */
  enhancedAuth: EnhancedAuth | undefined;
  /** Authentication Data for the CONNACK (the SCRAM server-final message). */
  authConnackData: Buffer | undefined;

  /** The outbound window: how many QoS 1/2 may be in flight to the client (window.ts). */
  window: SendWindow;
  /** Client's Maximum Packet Size [MQTT-3.1.2-24]: larger PUBLISH packets are not sent to it. */
  clientMaxPacketSize = Number.POSITIVE_INFINITY;
  /** Client's Topic Alias Maximum: how many outbound aliases the broker may assign. */
  clientTopicAliasMaximum = 0;
  /** Whether the client asked for Reason Strings and User Properties on errors (Request Problem Information). */
  problemInformation = true;
  /** Topic aliases the client set (made on first use: most clients never use them). */
  inboundAliases: Map<number, string> | undefined;
  private acks: PendingAck[] = NO_ACKS;
  private inputRelease: (() => void) | undefined;
  private outboundAliases: Map<string, number> | undefined;
  /** This client's message and byte rates (made on the first PUBLISH when limits.client* rates are set). */
  private rates: ClientLimiter | undefined;
  /** Wildcard subscriptions of the session (counted on first need; -1 until then). */
  wildcardSubscriptions = -1;
  /** Topic given a new outbound alias by the PUBLISH being encoded (undone if it is not sent). */
  private aliasAssigned: string | undefined;

  constructor(
    readonly ctx: ChannelContext,
    readonly out: ChannelOutput,
  ) {
    this.window = sendWindow(ctx.options, 0xffff, ctx.clock.now());
  }

  /** The connection has ended (the session manager asks while a claim runs). */
  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Room for QoS 1/2 in flight now (SessionLink): the window, within the byte budget. */
  get inflightLimit(): number {
    return this.window.limit;
  }

  /** An outbound QoS 1/2 message was acknowledged (PUBACK, PUBCOMP, a failed PUBREC): the window learns. */
  outboundAcknowledged(m: Message): void {
    const inflight = this.session?.inflight.size ?? 0;
    this.window.acknowledged(
      inflightCost(m.payload.length, m.topic.length),
      inflight - 1,
      this.ctx.clock.now(),
    );
  }

  get writable(): boolean {
    return this.state === 'connected' && this.out.bufferedBytes < this.ctx.options.slowClientBufferBytes;
  }

  /** Entry point for every decoded packet. Throws ProtocolError for violations (the connection closes). */
  handle(packet: Packet): void {
    count(this.ctx.counters.packetsReceived, packet.type);
    if (this.state === 'awaiting-connect') {
      // [MQTT-3.1.0-1] the first packet must be CONNECT
      if (packet.type !== 'connect')
        throw new ProtocolError('PROTOCOL_ERROR', `first packet was ${packet.type}, not CONNECT`);
      handleConnect(this, packet);
      return;
    }
    if (this.state === 'connecting' && this.enhancedAuth !== undefined) {
      handleConnectingPacket(this, packet);
      return;
    }
    if (this.state !== 'connected') return;
    switch (packet.type) {
      case 'publish':
        handlePublish(this, packet);
        return;
      case 'puback':
        handlePuback(this, packet);
        return;
      case 'pubrec':
        handlePubrec(this, packet);
        return;
      case 'pubrel':
        handlePubrel(this, packet);
        return;
      case 'pubcomp':
        handlePubcomp(this, packet);
        return;
      case 'subscribe':
        handleSubscribe(this, packet);
        return;
      case 'unsubscribe':
        handleUnsubscribe(this, packet);
        return;
      case 'pingreq':
        this.write(PINGRESP); // [MQTT-3.12.4-1]
        return;
      case 'disconnect':
        this.handleDisconnect(packet);
        return;
      case 'connect':
        throw new ProtocolError('PROTOCOL_ERROR', 'a second CONNECT'); // [MQTT-3.1.0-2]
      case 'auth':
        handleReauth(this, packet); // enhanced-auth.ts: a protocol error without a method in use
        return;
      default:
        // CONNACK, SUBACK, UNSUBACK, PINGRESP are server-to-client only.
        throw new ProtocolError('PROTOCOL_ERROR', `a client may not send ${packet.type}`);
    }
  }

  private handleDisconnect(packet: DisconnectPacket): void {
    const expiry = packet.properties?.sessionExpiryInterval;
    if (expiry !== undefined && this.session !== null) {
      // (3.14.2.2.2, no statement id) a session that expired at disconnect may not be given an expiry now.
      if (this.connectExpirySeconds === 0 && expiry !== 0) {
        throw new ProtocolError(
          'PROTOCOL_ERROR',
          'Session Expiry Interval set on DISCONNECT after 0 at CONNECT',
        );
      }
      this.session.expirySeconds = Math.min(expiry, this.ctx.options.maxSessionExpirySeconds);
    }
    // [MQTT-3.14.4-3] a normal DISCONNECT discards the will; reason 0x04 asks for it.
    if (packet.reasonCode !== ReasonCode.DisconnectWithWillMessage) this.will = undefined;
    const written = this.finish('client_disconnect');
    // A session the store keeps: its last acknowledgements are stored before the socket closes, so
    // a client reconnecting elsewhere at once is not sent them again (bounded: Redis may be away).
    if (written === undefined) this.out.close();
    else this.out.closeWhen(written);
  }

  /**
   * A session write the next packet depends on failed (PUBREL, PUBCOMP, UNSUBACK wait for it).
   * Fenced out: this connection is being taken over and closes on its own. Otherwise (Redis away)
   * it closes now, so the client resumes from what Redis holds instead of hanging here.
   */
  storeFailed(err: Error): void {
    if (this.state !== 'connected' || err instanceof FencedError) return;
    this.ctx.logger.warn({ event: 'session.write_failed', clientId: this.clientId, err: err.message });
    this.disconnect(ReasonCode.UnspecifiedError, 'session state could not be stored');
  }

  /**
   * Sends the packet `ending` calls for before the close, if any: which one is decided in refusal.ts
   * (CONNACK, DISCONNECT, or none), for every way a connection ends.
   */
  sendFinal(ending: Ending): void {
    const last = finalPacket(ending, this);
    if (last === undefined) return;
    if (last.packet.type === 'connack')
      count(this.ctx.counters.connacks, `${last.version} ${codeLabel(last.packet.reasonCode)}`);
    this.write(encode(last.packet, last.version));
  }

  /** Writes one encoded packet (not a PUBLISH: sendPublish), counted by its type. */
  write(packet: Buffer): void {
    count(this.ctx.counters.packetsSent, PACKET_TYPES[packet[0] >> 4]);
    this.out.write(packet);
  }

  /** Server-initiated close, with a DISCONNECT reason for MQTT 5 clients [MQTT-4.13.2-1]. */
  disconnect(
    reasonCode: number,
    reasonString?: string,
    options: { will?: boolean; serverReference?: string } = {},
  ): void {
    if (this.state === 'closed') return;
    this.sendFinal({
      kind: 'disconnect',
      reasonCode,
      reasonString,
      serverReference: options.serverReference,
    });
    if (options.will === false) this.will = undefined;
    this.finish(closeReason(reasonCode));
    this.out.close();
  }

  /** A protocol violation found by the decoder or a flow: reason code to the client, then close. */
  fail(err: ProtocolError): void {
    if (this.state === 'awaiting-connect' || this.state === 'connecting') {
      this.refuseConnect(err);
      return;
    }
    this.ctx.logger.debug({
      event: 'client.protocol_error',
      clientId: this.clientId,
      code: err.code,
      reason: err.message,
    });
    if (this.state === 'closed') return;
    this.sendFinal({ kind: 'violation', error: err });
    this.finish('protocol_error');
    this.out.close();
  }

  private refuseConnect(err: ProtocolError): void {
    this.sendFinal({ kind: 'violation', error: err });
    this.ctx.logger.debug({
      event: 'client.connect_refused',
      code: err.code,
      reason: err.message,
      remote: this.out.remoteAddress,
    });
    this.state = 'closed';
    this.out.close();
  }

  /** The transport is gone (socket closed, error, keep-alive). Idempotent. */
  transportClosed(): void {
    this.finish('connection_lost');
    this.rates?.close();
    this.releaseUserSlot();
  }

  /** Gives the username's connection slot back once it was taken (idempotent). */
  private releaseUserSlot(): void {
    const slot = this.userSlot;
    const quotas = this.ctx.quotas;
    if (slot === undefined || quotas === undefined) return;
    this.userSlot = undefined;
    slot.taken.then(
      (ok) => {
        if (ok) quotas.releaseConnection(slot.user, slot.id);
      },
      () => undefined,
    );
  }

  /**
   * limits.user.messagesPerMinute: counts a PUBLISH against the client's username (a Map lookup;
   * cluster-wide through the quota store's periodic flush). False (counted as a hit) over the quota.
   */
  withinUserQuota(): boolean {
    const perMinute = this.ctx.limits.options.user.messagesPerMinute;
    const quotas = this.ctx.quotas;
    const user = this.username;
    if (perMinute === 0 || quotas === undefined || user === undefined) return true;
    if (quotas.takeMessage(user, perMinute)) return true;
    this.ctx.limits.hit('user_messages');
    return false;
  }

  /**
   * Accounts an inbound PUBLISH against the client's rates. False when the client was disconnected
   * for it (rateLimitAction 'disconnect'); with 'pause' reading stops for a while instead.
   */
  withinRate(payloadBytes: number): boolean {
    const limits = this.ctx.limits;
    if (!limits.clientRates) return true;
    this.rates ??= new ClientLimiter(limits, this.out);
    const reasonCode = this.rates.publish(payloadBytes);
    if (reasonCode === 0) return true;
    this.ctx.logger.debug({ event: 'client.rate_exceeded', clientId: this.clientId });
    this.disconnect(reasonCode, 'message rate too high');
    return false;
  }

  keepAliveExpired(): void {
    this.ctx.logger.debug({ event: 'client.keepalive_timeout', clientId: this.clientId });
    this.disconnect(ReasonCode.KeepAliveTimeout, 'keep alive timeout');
  }

  /**
   * Leaves the connected state once: detaches the session and hands the will (if still armed) to the
   * broker. `reason`: what ended it, counted for a connected client (shoal_disconnects_total).
   */
  private finish(reason: string): Promise<void> | undefined {
    if (this.state === 'closed') return undefined;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    if (wasConnected) {
      count(this.ctx.counters.disconnects, reason);
      this.ctx.logger.debug({ event: 'client.disconnected', clientId: this.clientId, reason });
    }
    const written = wasConnected ? this.ctx.channelClosed(this, this.will) : undefined;
    this.will = undefined;
    return written;
  }

  // ---- outbound ----------------------------------------------------------------------------------

  sendPublish(d: Delivery, packetId: number, dup: boolean): boolean {
    if (this.state !== 'connected') return false;
    const m = d.message;
    if (d.qos === 0 && this.out.bufferedBytes >= this.ctx.options.slowClientBufferBytes) return false;
    // The clock is read only for a message that expires (most do not).
    const expiry = m.expiresAt === undefined ? undefined : remainingExpirySeconds(m, this.ctx.clock.now());
    let header: Buffer;
    let payload = m.payload;
    this.aliasAssigned = undefined;
    if (
      this.version === 5 &&
      (d.subscriptionIds !== undefined || expiry !== undefined || this.clientTopicAliasMaximum > 0)
    ) {
      const enc = this.encodeV5(m, d, packetId, dup, expiry);
      header = enc.header;
      payload = enc.payload;
    } else {
      const shared = this.sharedHeader(m, d);
      header = d.qos === 0 ? shared.header : headerWithPacketId(shared, packetId, dup);
    }
    if (header.length + payload.length > this.clientMaxPacketSize) {
      // [MQTT-3.1.2-25] never send a packet larger than the client's maximum: discard as if delivered.
      this.ctx.counters.dropped.too_large = (this.ctx.counters.dropped.too_large ?? 0) + 1;
      if (d.qos > 0 && this.session !== null) {
        const session = this.session;
        session.inflight.delete(packetId);
        // A session the cluster keeps forgets it too (else it would stay queued and be re-sent).
        session.durable?.acknowledged(packetId);
        // The window slot is free again: send what waits once this send (maybe inside pump) returns.
        queueMicrotask(() => session.pump());
      }
      // The client never sees this packet, so it never learns the alias it sets (MQTT 5 3.3.2.3.4).
      if (this.aliasAssigned !== undefined) this.outboundAliases?.delete(this.aliasAssigned);
      return true;
    }
    // Counted as messagesSent only: shoal_packets_sent_total{type="publish"} is read from it (a
    // keyed count per delivery cost 7 % of fan-out throughput).
    this.out.writePublish(header, payload);
    if (d.qos > 0)
      this.window.sent(inflightCost(m.payload.length, m.topic.length), this.session?.inflight.size ?? 0);
    const c = this.ctx.counters;
    c.messagesSent++;
    c.bytesSent += header.length + payload.length;
    c.sentByQos[d.qos]++;
    c.sentBytesByQos[d.qos] += payload.length;
    return true;
  }

  /** The PUBLISH header shared by every 3.x (or plain 5.0) receiver with the same QoS and retain flag. */
  private sharedHeader(m: Message, d: Delivery): EncodedPublish {
    const slot = (this.version === 5 ? 6 : 0) + d.qos * 2 + (d.retain ? 1 : 0);
    let cache = m.encoded;
    if (cache === undefined) {
      cache = [];
      m.encoded = cache;
    }
    let enc = cache[slot];
    if (enc === undefined) {
      enc = encodePublishHeader(
        {
          type: 'publish',
          topic: m.topic,
          payload: m.payload,
          qos: d.qos,
          retain: d.retain,
          dup: false,
          packetId: d.qos > 0 ? 1 : undefined,
          properties: m.properties,
        },
        this.version,
      );
      cache[slot] = enc;
    }
    return enc;
  }

  /** MQTT 5 PUBLISH with per-receiver properties: subscription ids, remaining expiry, topic alias. */
  private encodeV5(
    m: Message,
    d: Delivery,
    packetId: number,
    dup: boolean,
    expiry: number | undefined,
  ): EncodedPublish {
    const properties: Properties = m.properties ? { ...m.properties } : {};
    if (expiry !== undefined) properties.messageExpiryInterval = expiry; // [MQTT-3.3.2-6]
    if (d.subscriptionIds !== undefined) properties.subscriptionIdentifiers = d.subscriptionIds; // [MQTT-3.3.4-3]
    let topic = m.topic;
    if (this.clientTopicAliasMaximum > 0) {
      this.outboundAliases ??= new Map();
      const aliases = this.outboundAliases;
      const alias = aliases.get(topic);
      if (alias !== undefined) {
        properties.topicAlias = alias;
        topic = '';
      } else if (aliases.size < this.clientTopicAliasMaximum) {
        const next = aliases.size + 1; // [MQTT-3.3.2-11] within the client's Topic Alias Maximum
        aliases.set(topic, next);
        this.aliasAssigned = topic;
        properties.topicAlias = next;
      }
    }
    return encodePublishHeader(
      {
        type: 'publish',
        topic,
        payload: m.payload,
        qos: d.qos,
        retain: d.retain,
        dup: dup && d.qos > 0,
        packetId: d.qos > 0 ? packetId : undefined,
        properties,
      },
      5,
    );
  }

  sendPubrel(packetId: number): void {
    this.write(encodeAck('pubrel', packetId, 0, undefined, this.version));
  }

  /** PUBACK / PUBREC not yet sent (waiting for Redis, or for a congested subscriber to drain). */
  get pendingAcks(): number {
    return this.acks.length;
  }

  /** An acknowledgement that must wait its turn: PUBACK / PUBREC leave in PUBLISH order. */
  queueAck(type: 'puback' | 'pubrec', packetId: number): PendingAck {
    const ack: PendingAck = { type, packetId, reasonCode: 0, ready: false };
    if (this.acks === NO_ACKS) this.acks = [];
    this.acks.push(ack);
    // Too many acknowledgements held back (Redis, a congested subscriber): stop reading from this
    // client until they went out. 3.x clients know no Receive Maximum, and common 5.0 clients
    // (MQTT.js) do not limit themselves by it either.
    if (this.acks.length === this.ctx.options.receiveMaximum && this.inputRelease === undefined) {
      this.inputRelease = this.out.throttle();
    }
    return ack;
  }

  ackReady(ack: PendingAck): void {
    ack.ready = true;
    const acks = this.acks;
    if (acks[0] !== ack) return;
    let i = 0;
    while (i < acks.length && acks[i].ready) {
      const a = acks[i++];
      this.sendAck(a.type, a.packetId, a.reasonCode);
    }
    if (i === acks.length) this.acks = NO_ACKS;
    else acks.splice(0, i);
    if (this.inputRelease !== undefined && this.acks.length < this.ctx.options.receiveMaximum >> 1) {
      const release = this.inputRelease;
      this.inputRelease = undefined;
      release();
    }
  }

  sendAck(type: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp', packetId: number, reasonCode = 0): void {
    this.write(encodeAck(type, packetId, reasonCode, undefined, this.version));
  }
}

/** MQTT control packet type names by their number (the first byte's high nibble). */
const PACKET_TYPES: readonly string[] = Object.entries(PacketCode).reduce<string[]>(
  (names, [name, code]) => {
    names[code] = name;
    return names;
  },
  ['reserved'],
);

const PINGRESP = Buffer.from([0xd0, 0x00]);
/** The shared empty ack list (never pushed to: queueAck replaces it first). */
const NO_ACKS: PendingAck[] = [];
