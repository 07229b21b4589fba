/**
 * `node:diagnostics_channel` channels the broker publishes on, for in-process tracing and APMs.
 * Publishing costs a property read when nobody subscribes (`hasSubscribers`), so the hot paths check
 * it first and build no message object otherwise. Message objects are the broker's own: subscribers
 * must not change them.
 *
 *   import diagnostics from 'node:diagnostics_channel';
 *   diagnostics.subscribe('shoal:message.publish', ({ message }) => console.log(message.topic));
 */
import diagnostics from 'node:diagnostics_channel';

/** A client completed CONNECT: `{ clientId, protocolVersion, listener, sessionPresent }`. */
export const connectChannel = diagnostics.channel('shoal:client.connect');
/** A connected client's connection ended: `{ clientId }`. */
export const disconnectChannel = diagnostics.channel('shoal:client.disconnect');
/** A message enters routing (client PUBLISH, will, $SYS, admin API): `{ message }`. */
export const publishChannel = diagnostics.channel('shoal:message.publish');
/** A message is handed to one subscriber's session: `{ clientId, message, qos }`. */
export const deliverChannel = diagnostics.channel('shoal:message.deliver');
