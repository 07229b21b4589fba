/**
 * Who may connect, publish and subscribe. The broker asks these hooks; the defaults allow everything
 * (the embedded single-node start). Implementations may answer synchronously (the fast path: no
 * promise is made) or with a promise; the connection holds its later packets until the answer comes.
 */
import type { PeerCertificate } from 'node:tls';
import type { ScramCredentials } from './scram.js';

export interface ConnectInfo {
  clientId: string;
  username?: string;
  password?: Buffer;
  remoteAddress: string;
  transport: string;
  /** The TLS client certificate, present only when it verified against the configured CA. */
  certificate?: PeerCertificate;
}

/**
 * What a credential itself grants, beyond who the client is: the ACL claim of a JWT, the `acl` of an
 * HTTP hook's answer. Made once per connection at CONNECT; asked on every PUBLISH and SUBSCRIBE.
 */
export interface TopicPermissions {
  publish(topic: string): boolean;
  /** `filter` without any `$share/group/` prefix. */
  subscribe(filter: string): boolean;
}

/** A fuller answer than a bare reason code. */
export interface AuthResult {
  /** 0 allows; otherwise the MQTT 5 reason code of the refusal (0x86, 0x87, ...). */
  reasonCode: number;
  /** The identity to use instead of the CONNECT User Name (a certificate's CN, a token's claim). */
  username?: string;
  /** Limits that came with the credential; handed back to the authorize hooks. */
  permissions?: TopicPermissions;
}

/** An MQTT 5 reason code (0 allows; 0x86 bad user name or password, 0x87 not authorized, ...), or an AuthResult. */
export type AuthDecision = number | AuthResult;

export interface AuthHooks {
  authenticate(info: ConnectInfo): AuthDecision | Promise<AuthDecision>;
  /** A rejected promise denies. */
  authorizePublish(
    clientId: string,
    username: string | undefined,
    topic: string,
    permissions?: TopicPermissions,
  ): boolean | Promise<boolean>;
  /** `filter` as the client sent it (a shared subscription keeps its `$share/group/` prefix). */
  authorizeSubscribe(
    clientId: string,
    username: string | undefined,
    filter: string,
    permissions?: TopicPermissions,
  ): boolean | Promise<boolean>;
  /**
   * What a denied PUBLISH does to an MQTT 3.x client, which has no negative acknowledgement:
   * 'drop' acknowledges and discards it, 'disconnect' closes the connection [MQTT-3.3.5-2].
   * MQTT 5 clients always get PUBACK / PUBREC 0x87. Default 'drop'.
   */
  v3DeniedPublish?: 'drop' | 'disconnect';
  /**
   * MQTT 5 enhanced authentication with SCRAM-SHA-256 (set when a password file is configured): the
   * user's stored credentials, undefined when the user is unknown or has none.
   */
  scramCredentials?(username: string): ScramCredentials | undefined;
}

export const allowAll: AuthHooks = {
  authenticate: () => 0,
  authorizePublish: () => true,
  authorizeSubscribe: () => true,
};

/** The reason code of a decision. */
export function reasonCodeOf(decision: AuthDecision): number {
  return typeof decision === 'number' ? decision : decision.reasonCode;
}

/** True for a promise (or any thenable) rather than a value: the slow path of a hook's answer. */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === 'function';
}
