/** Listening and closing for the node servers behind every listener (net, tls, http, https). */
import type net from 'node:net';

/**
 * Binds `server` to host:port and resolves with the bound port. Errors after that (an accept
 * failing with EMFILE, say) go to `onError` rather than crashing the process.
 */
export function listenOn(
  server: net.Server,
  host: string,
  port: number,
  onError: (err: Error) => void = () => {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      server.on('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/**
 * Stops accepting new connections and resolves at once. Open connections stay open: they are the
 * broker's to close, and the server's own 'close' event waits for them.
 */
export function stopAccepting(server: net.Server): Promise<void> {
  if (server.listening) server.close();
  return Promise.resolve();
}
