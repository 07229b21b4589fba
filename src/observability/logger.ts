/**
 * The one place pino is configured: JSON lines to stdout, ISO timestamps, secrets redacted.
 * Callers log an object with a stable `event` name (`listener.started`) and may add a message.
 */
import pino from 'pino';
import type { LogLevel } from '../config/schema.js';

export type Logger = pino.Logger;

/** Paths pino replaces with '[redacted]' wherever they are logged. Log a password's length, never it. */
const REDACT = ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization'];

/** A logger at `level` writing to `destination` (stdout when omitted; tests pass a stream). */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { pid: process.pid },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
