import { EventEmitter, once } from 'node:events';
import type { Readable } from 'node:stream';
import type { ConnectionHandler, Transport } from '../../src/transport/types.js';

/** A Transport bound the way the connection layer binds it, recording what it reports. */
export class BoundTransport {
  readonly errors: Error[] = [];
  readonly closed: Promise<void>;
  private chunks: Buffer[] = [];
  private length = 0;
  private readonly events = new EventEmitter();

  constructor(readonly transport: Transport) {
    this.closed = new Promise((resolve) => this.events.once('close', resolve));
    transport.bind({
      data: (chunk) => {
        this.chunks.push(chunk);
        this.length += chunk.length;
        this.events.emit('data');
      },
      drain: () => this.events.emit('drain'),
      close: () => this.events.emit('close'),
      error: (err) => {
        this.errors.push(err);
        this.events.emit('error-seen', err);
      },
    });
  }

  /** Resolves with all bytes received so far once there are at least `n`. */
  async bytes(n: number): Promise<Buffer> {
    while (this.length < n) await once(this.events, 'data');
    return Buffer.concat(this.chunks);
  }

  nextDrain(): Promise<unknown> {
    return once(this.events, 'drain');
  }

  async nextError(): Promise<Error> {
    if (this.errors.length > 0) return this.errors[0];
    const [err] = await once(this.events, 'error-seen');
    return err as Error;
  }
}

/** A ConnectionHandler that binds each accepted Transport and hands it out in order. */
export class AcceptQueue {
  private readonly accepted: BoundTransport[] = [];
  private readonly waiting: Array<(t: BoundTransport) => void> = [];

  readonly onConnection: ConnectionHandler = (transport) => {
    const bound = new BoundTransport(transport);
    const waiter = this.waiting.shift();
    if (waiter) waiter(bound);
    else this.accepted.push(bound);
  };

  next(): Promise<BoundTransport> {
    const ready = this.accepted.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

/** Resolves with what a client stream received once it has at least `n` bytes; then pauses it. */
export function readBytes(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length < n) return;
      cleanup();
      stream.pause();
      resolve(Buffer.concat(chunks));
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`stream ended after ${length} of ${n} bytes`));
    };
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
  });
}
