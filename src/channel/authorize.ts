/**
 * Asynchronous answers of the authorize hooks. A synchronous answer (the usual case, and any cached
 * one) is used where it is given, with no promise made. A promise holds the connection's input until
 * it settles, so the packets after this one are handled after it, in order; a rejected promise denies.
 */
import { ProtocolError, ReasonCode } from '../protocol/index.js';
import type { Channel } from './channel.js';

/** Runs `then` with the settled answers of `pending`, unless the connection has closed meanwhile. */
export function afterAuthorization(
  ch: Channel,
  pending: ReadonlyArray<boolean | PromiseLike<boolean>>,
  then: (allowed: boolean[]) => void,
): void {
  ch.out.holdInput(true);
  const answers = pending.map((a) =>
    Promise.resolve(a).then(
      (allowed) => allowed === true,
      (err: unknown) => {
        ch.ctx.logger.error({ event: 'auth.error', clientId: ch.clientId, err: String(err) });
        return false;
      },
    ),
  );
  void Promise.all(answers).then((allowed) => {
    if (ch.state !== 'connected') return;
    try {
      then(allowed);
    } catch (err) {
      if (err instanceof ProtocolError) ch.fail(err);
      else {
        ch.ctx.logger.error({ event: 'connection.internal_error', clientId: ch.clientId, err: String(err) });
        ch.disconnect(ReasonCode.UnspecifiedError, 'internal error');
      }
    }
    ch.out.holdInput(false);
  });
}
