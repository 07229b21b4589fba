/**
 * Counting for the metrics (Counters in context.ts): by-key increments and the bounded names a
 * connection's end is counted under. Plain numbers, read at scrape time (observability/metrics.ts).
 */
import { ReasonCode } from '../protocol/index.js';

/** Adds one to `record[key]`. */
export function count(record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1;
}

/** The name a connection's end is counted under: the server's DISCONNECT reason, or how it ended. */
export function closeReason(reasonCode: number): string {
  return REASON_NAMES.get(reasonCode) ?? 'unspecified_error';
}

/** MQTT 5 reason codes a server sends in DISCONNECT, by snake_case name (bounded label values). */
const REASON_NAMES = new Map<number, string>(
  Object.entries(ReasonCode)
    .filter(([name, code]) => code >= 0x80 && name !== 'NormalDisconnection')
    .map(([name, code]) => [
      code,
      name
        .replace('QoS', 'Qos')
        .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
        .toLowerCase(),
    ]),
);

/** A CONNACK reason code as its label value: `0x00`, `0x86`. */
export function codeLabel(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')}`;
}
