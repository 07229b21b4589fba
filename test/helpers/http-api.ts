/**
 * A node's HTTP port as the tests use it: admin API calls (JSON in and out) and one /metrics series,
 * read with parseMetrics (test/helpers/cluster.ts).
 */
import { parseMetrics } from './cluster.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers, read field by field by the tests
export type ApiAnswer = { status: number; json: any };

/** Calls `/api/v1<path>` on `httpPort`, with a bearer token when given. */
export async function adminCall(
  httpPort: number,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Every series of /metrics on `httpPort` (`name` or `name{labels}` → value; absent: undefined). */
export async function scrapeMetrics(httpPort: number): Promise<Record<string, number>> {
  return parseMetrics(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text());
}

/** One series of /metrics on `httpPort`, 0 when absent. */
export async function metricOf(httpPort: number, series: string): Promise<number> {
  return (await scrapeMetrics(httpPort))[series] ?? 0;
}
