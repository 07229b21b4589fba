import net from 'node:net';

/**
 * Asks the OS for a free TCP port on `host` (listen on port 0, read the port, close).
 * The port is free at the moment of return; a caller that then binds it can still lose a race
 * with another process, so callers that spawn servers should retry on "address in use".
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected server address ${String(address)}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * One connection attempt. Resolves true if a TCP connection was established within `timeoutMs`,
 * false if it was refused, reset or timed out.
 */
export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/**
 * Waits until something accepts TCP connections on host:port. Attempts are spaced by a short
 * exponential backoff (25 ms doubling up to 250 ms) and bounded by `timeoutMs` overall; this polls
 * on purpose, since the event being waited on happens in another process.
 */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  let attempts = 0;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    attempts++;
    if (await canConnect(port, host, Math.min(1_000, remaining))) return;
    const left = deadline - Date.now();
    if (left <= 0) break;
    await new Promise((r) => setTimeout(r, Math.min(delay, left)));
    delay = Math.min(delay * 2, 250);
  }
  throw new Error(
    `waitForPort: nothing accepted connections on ${host}:${port} within ${timeoutMs} ms (${attempts} attempts)`,
  );
}
