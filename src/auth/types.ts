/**
 * Who may connect, publish and subscribe. The broker asks these hooks; the defaults allow everything
 * (the embedded single-node start). Implementations may answer synchronously or with a promise.
 */
export interface ConnectInfo {
  clientId: string;
  username?: string;
  password?: Buffer;
  remoteAddress: string;
  transport: string;
}

/** An MQTT 5 reason code: 0 allows; 0x86 bad user name or password, 0x87 not authorized, ... */
export type AuthDecision = number;

export interface AuthHooks {
  authenticate(info: ConnectInfo): AuthDecision | Promise<AuthDecision>;
  authorizePublish(clientId: string, username: string | undefined, topic: string): boolean;
  authorizeSubscribe(clientId: string, username: string | undefined, filter: string): boolean;
}

export const allowAll: AuthHooks = {
  authenticate: () => 0,
  authorizePublish: () => true,
  authorizeSubscribe: () => true,
};
