/**
 * An HTTP service that answers authentication and authorization questions, for identities kept
 * elsewhere. Each question is a JSON POST to one URL with a short timeout:
 *
 *   {"action":"connect","clientId","username","password","remoteAddress","transport"}
 *   {"action":"publish" | "subscribe","clientId","username","topic"}
 *
 * Answers: 200 with `{"result":"allow" | "deny" | "ignore"}` (allow when `result` is absent; a
 * connect answer may add `username` and `acl`, a rule list in the ACL file's syntax), 204 allows,
 * 401 and 403 deny. Anything else, or no answer in time, is an error: CONNECT is refused with
 * Server unavailable, PUBLISH and SUBSCRIBE are denied; errors are not cached.
 *
 * Answers are cached for `cacheTtlMs` (a connect answer under a hash of the password, never the
 * password itself); concurrent identical questions share one request. A cached authorization answer
 * is returned synchronously, so a client's steady traffic makes no promise.
 */

import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { ErrorCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { AclError, parseRules, permissionsFrom } from './acl.js';
import type { ConnectInfo, TopicPermissions } from './types.js';

export interface HttpHookOptions {
  url: string;
  timeoutMs: number;
  cacheTtlMs: number;
  /** Milliseconds; the broker's clock. */
  now(): number;
  logger: Logger;
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number;
}

export type HttpConnectAnswer =
  | { result: 'allow'; username?: string; permissions?: TopicPermissions }
  | { result: 'deny' }
  | { result: 'ignore' };

interface Entry<T> {
  value: T | Promise<T>;
  /** Set once the answer has arrived. */
  expiresAt: number;
}

/** A map of answers with a time to live; bounded, the oldest insertions evicted first. */
export class TtlCache<T> {
  private readonly map = new Map<string, Entry<T>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.map.size;
  }

  clear(): void {
    this.map.clear();
  }

  /** The cached answer (a promise while the question is in flight), or `ask()`'s, cached. */
  get(key: string, ask: () => Promise<T>): T | Promise<T> {
    const hit = this.map.get(key);
    if (hit !== undefined && (hit.value instanceof Promise || hit.expiresAt > this.now())) return hit.value;
    if (hit !== undefined) this.map.delete(key);
    const pending = ask();
    if (this.ttlMs === 0) return pending;
    const entry: Entry<T> = { value: pending, expiresAt: Number.POSITIVE_INFINITY };
    this.insert(key, entry);
    pending.then(
      (value) => {
        if (this.map.get(key) !== entry) return;
        entry.value = value;
        entry.expiresAt = this.now() + this.ttlMs;
      },
      () => {
        if (this.map.get(key) === entry) this.map.delete(key);
      },
    );
    return pending;
  }

  private insert(key: string, entry: Entry<T>): void {
    if (this.map.size >= this.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(key, entry);
  }
}

class HttpHookError extends Error {
  override readonly name = 'HttpHookError';
  readonly code = 'AUTH_HOOK_FAILED' satisfies ErrorCode;
}

export class HttpAuthHook {
  private readonly connects: TtlCache<HttpConnectAnswer>;
  private readonly topics: TtlCache<boolean>;
  /** Where the requests go, for logs (without any credentials a URL may hold). */
  private readonly target: string;

  constructor(private readonly options: HttpHookOptions) {
    const max = options.maxEntries ?? 10_000;
    this.connects = new TtlCache(options.cacheTtlMs, max, options.now);
    this.topics = new TtlCache(options.cacheTtlMs, max * 10, options.now);
    const u = new URL(options.url);
    this.target = `${u.protocol}//${u.host}${u.pathname}`;
  }

  /** Forgets every cached answer. */
  clear(): void {
    this.connects.clear();
    this.topics.clear();
  }

  authenticate(info: ConnectInfo): Promise<HttpConnectAnswer> {
    const password = info.password;
    const key = JSON.stringify([
      info.clientId,
      info.username ?? null,
      password === undefined ? null : createHash('sha256').update(password).digest('base64'),
      info.remoteAddress,
      info.transport,
    ]);
    const body: Record<string, unknown> = {
      action: 'connect',
      clientId: info.clientId,
      username: info.username ?? null,
      remoteAddress: info.remoteAddress,
      transport: info.transport,
    };
    if (password !== undefined) {
      if (isUtf8(password)) body.password = password.toString('utf8');
      else body.passwordBase64 = password.toString('base64');
    }
    return Promise.resolve(
      this.connects.get(key, async () => this.connectAnswer(await this.post(body), info)),
    );
  }

  /** True, false, or a promise of either when the answer is not cached. A failed request denies. */
  authorize(
    action: 'publish' | 'subscribe',
    clientId: string,
    username: string | undefined,
    topic: string,
  ): boolean | Promise<boolean> {
    const key = JSON.stringify([action, clientId, username ?? null, topic]);
    const answer = this.topics.get(key, async () => {
      const res = await this.post({ action, clientId, username: username ?? null, topic });
      return res.result !== 'deny';
    });
    if (!(answer instanceof Promise)) return answer;
    return answer.catch((err: unknown) => {
      this.options.logger.warn({ event: 'auth.http_error', url: this.target, action, reason: String(err) });
      return false;
    });
  }

  private connectAnswer(res: HttpResult, info: ConnectInfo): HttpConnectAnswer {
    if (res.result !== 'allow') return { result: res.result };
    const body = res.body;
    const username = typeof body?.username === 'string' ? body.username : undefined;
    if (body?.acl === undefined) return { result: 'allow', username };
    try {
      const rules = parseRules(body.acl, 'acl');
      return {
        result: 'allow',
        username,
        permissions: permissionsFrom(rules, info.clientId, username ?? info.username),
      };
    } catch (err) {
      if (err instanceof AclError) throw new HttpHookError(`the answer's acl is invalid: ${err.message}`);
      throw err;
    }
  }

  private async post(body: Record<string, unknown>): Promise<HttpResult> {
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      const e = err as Error;
      throw new HttpHookError(e.name === 'TimeoutError' ? 'timeout' : (e.message ?? String(e)));
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      return { result: 'deny' };
    }
    if (res.status === 204) return { result: 'allow' };
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new HttpHookError(`status ${res.status}`);
    }
    const text = await res.text();
    if (text.trim() === '') return { result: 'allow' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new HttpHookError('the answer is not JSON');
    }
    if (typeof parsed !== 'object' || parsed === null)
      throw new HttpHookError('the answer is not a JSON object');
    const result = (parsed as { result?: unknown }).result ?? 'allow';
    if (result !== 'allow' && result !== 'deny' && result !== 'ignore')
      throw new HttpHookError('result must be allow, deny or ignore');
    return { result, body: parsed as Record<string, unknown> };
  }
}

interface HttpResult {
  result: 'allow' | 'deny' | 'ignore';
  body?: Record<string, unknown>;
}
