/**
 * Aedes-style hooks (callback last) as Shoal AuthHooks, so hooks written for Aedes move over
 * unchanged: `createBroker(fromAedesHooks({ authenticate, authorizePublish, authorizeSubscribe }))`.
 * The client object they get is `{ id, username }`; the packet `{ cmd: 'publish', topic }`; the
 * subscription `{ topic }`. An error passed to a callback denies (an authenticate error's
 * `returnCode` 2..5 chooses the CONNACK code, as in Aedes).
 */
import { ReasonCode } from '../protocol/index.js';
import type { AuthHooks, ConnectInfo } from './types.js';

export interface AedesClient {
  id: string;
  username?: string;
}

type Callback<T> = (error: (Error & { returnCode?: number }) | null | undefined, value?: T) => void;

export interface AedesHooks {
  authenticate?(
    client: AedesClient,
    username: string | undefined,
    password: Buffer | undefined,
    done: Callback<boolean>,
  ): void;
  authorizePublish?(
    client: AedesClient,
    packet: { cmd: 'publish'; topic: string },
    done: Callback<never>,
  ): void;
  authorizeSubscribe?(
    client: AedesClient,
    sub: { topic: string },
    done: Callback<{ topic: string } | null>,
  ): void;
}

/** Aedes / MQTT 3.1.1 CONNACK return codes as MQTT 5 reason codes. */
const RETURN_CODES: Record<number, number> = {
  2: ReasonCode.ClientIdentifierNotValid,
  3: ReasonCode.ServerUnavailable,
  4: ReasonCode.BadUserNameOrPassword,
  5: ReasonCode.NotAuthorized,
};

export function fromAedesHooks(hooks: AedesHooks): Partial<AuthHooks> {
  const out: Partial<AuthHooks> = {};
  const { authenticate, authorizePublish, authorizeSubscribe } = hooks;
  if (authenticate !== undefined) {
    out.authenticate = (info: ConnectInfo) =>
      new Promise<number>((resolve) => {
        authenticate(
          { id: info.clientId, username: info.username },
          info.username,
          info.password,
          (err, ok) => {
            if (err) resolve(RETURN_CODES[err.returnCode ?? 5] ?? ReasonCode.NotAuthorized);
            else resolve(ok === true ? 0 : ReasonCode.BadUserNameOrPassword);
          },
        );
      });
  }
  if (authorizePublish !== undefined) {
    out.authorizePublish = (clientId, username, topic) =>
      new Promise<boolean>((resolve) => {
        authorizePublish({ id: clientId, username }, { cmd: 'publish', topic }, (err) => resolve(!err));
      });
  }
  if (authorizeSubscribe !== undefined) {
    out.authorizeSubscribe = (clientId, username, filter) =>
      new Promise<boolean>((resolve) => {
        authorizeSubscribe({ id: clientId, username }, { topic: filter }, (err, sub) =>
          resolve(!err && sub !== null && sub !== undefined),
        );
      });
  }
  return out;
}
