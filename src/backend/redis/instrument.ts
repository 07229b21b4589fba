/**
 * Redis command latency and errors, measured where every command of a client passes: its
 * `sendCommand` (auto-pipelined commands too). Each command is timed once, from the call to its
 * reply, so a command queued during a reconnect counts the wait its caller saw.
 */
import type { RedisClient } from './connect.js';

/** What a command looks like to sendCommand (ioredis' Command, narrowed). */
interface SentCommand {
  name: string;
  promise: Promise<unknown>;
}

export type CommandObserver = (command: string, seconds: number, failed: boolean) => void;

/** Times every command `client` sends from now on. Blocking reads (BLOCK) belong on other clients. */
export function observeCommands(client: RedisClient, observe: CommandObserver): void {
  const seen = new WeakSet<object>();
  const target = client as unknown as { sendCommand(command: SentCommand, ...rest: unknown[]): unknown };
  const send = target.sendCommand.bind(client);
  target.sendCommand = (command: SentCommand, ...rest: unknown[]) => {
    // A Cluster re-sends a command after MOVED / ASK: time it once, from the first send.
    if (!seen.has(command)) {
      seen.add(command);
      const started = process.hrtime.bigint();
      const done = (failed: boolean) =>
        observe(command.name, Number(process.hrtime.bigint() - started) / 1e9, failed);
      command.promise.then(
        () => done(false),
        () => done(true),
      );
    }
    return send(command, ...rest);
  };
}
