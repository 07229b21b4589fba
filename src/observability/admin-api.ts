/**
 * The admin API under /api/v1 on the HTTP port (docs/admin-api.md): nodes, clients (paged), one
 * client's session and kick (on whichever node serves it: admin-cluster.ts), who subscribes to a
 * topic (cluster-wide), retained messages (list, delete by filter), publish, the log level, a
 * drain, and its own OpenAPI document (openapi.ts). JSON in and out.
 *
 * With `admin.token` set every request needs `Authorization: Bearer <token>`; `admin.readOnlyToken`
 * may read (GET) but not change anything. Without a token, only requests from a loopback address
 * are served. Tokens are compared in constant time and never logged; request logs carry the
 * method, the route and the status.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { Ban } from '../backend/types.js';
import { type AdminErrorCode, type ErrorCode, httpStatusOf } from '../errors.js';
import type { Banning } from '../extensions/bans.js';
import type { DelayedPublisher } from '../extensions/delayed.js';
import type { Properties, QoS } from '../protocol/index.js';
import { addressEntryProblem } from '../transport/address.js';
import { type ClusterAdmin, NodeUnavailableError } from './admin-cluster.js';
import type { AdminNode, AdminPublish, BrokerAdmin } from './admin-types.js';
import type { Logger } from './logger.js';
import { OPENAPI } from './openapi.js';

export interface AdminApiOptions {
  broker: BrokerAdmin;
  /** The nodes of the cluster (this one alone on a single node). */
  nodes(): Promise<AdminNode[]>;
  /** The cluster-wide operations (client, kick, subscribers, log level); local on a single node. */
  cluster: ClusterAdmin;
  /** Bearer token; null = loopback only. */
  token: string | null;
  /** A bearer token that may only read (GET); null = none. */
  readOnlyToken?: string | null;
  /** Starts this node's graceful drain (as SIGTERM does). */
  drain?(): void;
  /** The cluster's bans (src/extensions/bans.ts). */
  banning?: Pick<Banning, 'bans' | 'add' | 'remove'>;
  /** Delayed messages (src/extensions/delayed.ts); absent when delayed publish is off. */
  delayed?: Pick<DelayedPublisher, 'list' | 'cancel'>;
  logLevel?(): string;
  /** Largest request body (a publish), in bytes. */
  maxBodyBytes: number;
  logger?: Logger;
}

export const ADMIN_PREFIX = '/api/v1/';

const DEFAULT_LIMIT = 100;
/** pino's levels, as `logLevel` takes them. */
const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const MAX_LIMIT = 1000;

/** An answer other than 200, with a stable code for clients; the status is the code's (errors.ts). */
export class HttpError extends Error {
  readonly status: number;

  constructor(
    readonly code: AdminErrorCode,
    message: string,
  ) {
    super(message);
    this.status = httpStatusOf(code);
  }
}

type Handler = (req: http.IncomingMessage, url: URL, param: string | undefined) => Promise<unknown>;

export class AdminApi {
  private readonly tokenDigest: Buffer | undefined;
  private readonly readOnlyDigest: Buffer | undefined;
  private readonly routes: Record<string, Partial<Record<string, Handler>>>;

  constructor(private readonly o: AdminApiOptions) {
    this.tokenDigest = o.token === null ? undefined : digest(o.token);
    this.readOnlyDigest = o.readOnlyToken == null ? undefined : digest(o.readOnlyToken);
    const b = o.broker;
    const c = o.cluster;
    this.routes = {
      nodes: { GET: async () => ({ nodes: await o.nodes() }) },
      clients: {
        GET: async (_req, url) =>
          b.clients({
            prefix: optional(url, 'prefix'),
            username: optional(url, 'username'),
            after: optional(url, 'after'),
            limit: limitOf(url),
          }),
      },
      'clients/:id': {
        GET: async (_req, _url, id) => {
          const client = await c.client(id as string);
          if (client === undefined) throw notFound('client', id as string);
          return client;
        },
        DELETE: async (_req, url, id) => {
          const discard = url.searchParams.get('discardSession') === 'true';
          const { kicked, node } = await c.kick(id as string, discard);
          if (!kicked) throw notFound('client', id as string);
          return { kicked: id, node, sessionDiscarded: discard };
        },
      },
      subscriptions: {
        GET: async (_req, url) => {
          const topic = url.searchParams.get('topic');
          if (topic === null || topic === '')
            throw bad('topic is required: the subscriptions matching it are listed');
          return { topic, items: await c.subscribers(topic) };
        },
      },
      'log-level': {
        GET: async () => ({ level: o.logLevel?.() ?? 'info' }),
        PUT: async (req) => {
          const body = (await readJson(req, o.maxBodyBytes)) as { level?: unknown; scope?: unknown };
          if (typeof body !== 'object' || body === null || typeof body.level !== 'string')
            throw bad('the body must be {"level": "...", "scope": "node" | "cluster"}');
          const scope = body.scope ?? 'node';
          if (scope !== 'node' && scope !== 'cluster') throw bad('scope must be node or cluster');
          if (!LOG_LEVELS.has(body.level)) throw bad(`level must be one of ${[...LOG_LEVELS].join(', ')}`);
          return { nodes: await c.setLogLevel(body.level, scope === 'cluster') };
        },
      },
      drain: {
        POST: async () => {
          if (o.drain === undefined)
            throw new HttpError('NOT_FOUND', 'this node cannot be drained from here');
          // Answered first: the drain closes the HTTP listener at its end.
          setImmediate(() => o.drain?.());
          return { draining: true };
        },
      },
      bans: {
        GET: async () => ({ items: this.banning().bans }),
        POST: async (req) => ({ ban: await this.banning().add(banOf(await readJson(req, o.maxBodyBytes))) }),
      },
      'bans/:id': {
        DELETE: async (_req, _url, id) => {
          const colon = (id as string).indexOf(':');
          const kind = (id as string).slice(0, colon);
          if (colon < 0 || !BAN_KINDS.has(kind))
            throw bad('the ban id is <kind>:<value>, kind clientId, username or address');
          if (!(await this.banning().remove(kind as Ban['kind'], (id as string).slice(colon + 1))))
            throw notFound('ban', id as string);
          return { removed: id };
        },
      },
      delayed: {
        GET: async (_req, url) => {
          const limit = limitOf(url);
          const items = await this.delayedOps().list(limit, optional(url, 'after'));
          return {
            items: items.map((d) => ({
              id: d.id,
              topic: d.message.topic,
              qos: d.message.qos,
              retain: d.message.retain,
              payloadBytes: d.message.payload.length,
              dueAt: d.dueAt,
            })),
            next: items.length === limit ? items[items.length - 1].id : null,
          };
        },
      },
      'delayed/:id': {
        DELETE: async (_req, _url, id) => {
          if (!(await this.delayedOps().cancel(id as string)))
            throw notFound('delayed message', id as string);
          return { cancelled: id };
        },
      },
      'openapi.json': { GET: async () => OPENAPI },
      retained: {
        GET: async (_req, url) => b.retained(filterOf(url), limitOf(url), optional(url, 'after')),
        DELETE: async (_req, url) => ({ deleted: await b.deleteRetained(filterOf(url, false)) }),
      },
      publish: {
        POST: async (req) => {
          const message = publishOf(await readJson(req, o.maxBodyBytes));
          return { delivered: await b.publish(message) };
        },
      },
    };
  }

  private delayedOps(): Pick<DelayedPublisher, 'list' | 'cancel'> {
    if (this.o.delayed === undefined)
      throw new HttpError('NOT_FOUND', 'delayed publish is off (delayed.enabled)');
    return this.o.delayed;
  }

  private banning(): Pick<Banning, 'bans' | 'add' | 'remove'> {
    if (this.o.banning === undefined) throw new HttpError('NOT_FOUND', 'bans are not served here');
    return this.o.banning;
  }

  /** The routes served (`clients/:id`) and their methods: what the OpenAPI document must describe. */
  get routeTable(): { route: string; methods: string[] }[] {
    return Object.entries(this.routes).map(([route, methods]) => ({ route, methods: Object.keys(methods) }));
  }

  /** Serves one request whose path starts with ADMIN_PREFIX. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method ?? 'GET';
    let status = 200;
    let route = 'unknown';
    try {
      this.authorize(req, method);
      const rest = url.pathname.slice(ADMIN_PREFIX.length);
      const slash = rest.indexOf('/');
      const param = slash < 0 ? undefined : decodePathPart(rest.slice(slash + 1));
      route = slash < 0 ? rest : `${rest.slice(0, slash)}/:id`;
      const methods = this.routes[route];
      if (methods === undefined || (param !== undefined && param.length === 0))
        throw new HttpError('NOT_FOUND', `no such endpoint: ${url.pathname}`);
      const handler = methods[method];
      if (handler === undefined) {
        res.setHeader('allow', Object.keys(methods).join(', '));
        throw new HttpError('METHOD_NOT_ALLOWED', `${method} is not allowed on ${url.pathname}`);
      }
      sendJson(res, 200, await handler(req, url, param));
    } catch (err) {
      const e =
        err instanceof HttpError
          ? err
          : (err as { code?: string }).code === ('ADMIN_BAD_REQUEST' satisfies ErrorCode)
            ? new HttpError('BAD_REQUEST', (err as Error).message)
            : err instanceof NodeUnavailableError
              ? new HttpError('NODE_UNAVAILABLE', err.message)
              : undefined;
      if (e === undefined) {
        this.o.logger?.error({ event: 'admin.error', method, route, err });
        const internal = new HttpError('INTERNAL', 'internal error');
        status = internal.status;
        sendJson(res, status, { error: { code: internal.code, message: internal.message } });
      } else {
        status = e.status;
        if (e.status === 401) res.setHeader('www-authenticate', 'Bearer realm="shoal"');
        sendJson(res, e.status, { error: { code: e.code, message: e.message } });
      }
    }
    const entry = { event: 'admin.request', method, route, status };
    if (method === 'GET') this.o.logger?.debug(entry);
    else this.o.logger?.info(entry);
  }

  private authorize(req: http.IncomingMessage, method: string): void {
    if (this.tokenDigest === undefined && this.readOnlyDigest === undefined) {
      if (!isLoopback(req.socket.remoteAddress))
        throw new HttpError('FORBIDDEN', 'set admin.token to use the admin API from another host');
      return;
    }
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) throw new HttpError('UNAUTHORIZED', 'a bearer token is required');
    const given = digest(match[1]);
    if (this.tokenDigest !== undefined && timingSafeEqual(given, this.tokenDigest)) return;
    if (this.readOnlyDigest !== undefined && timingSafeEqual(given, this.readOnlyDigest)) {
      if (method === 'GET' || method === 'HEAD') return;
      throw new HttpError('FORBIDDEN', 'the read-only token may not change anything');
    }
    throw new HttpError('UNAUTHORIZED', 'the bearer token is not valid');
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

function notFound(what: string, id: string): HttpError {
  return new HttpError('NOT_FOUND', `no such ${what}: ${id}`);
}

function optional(url: URL, name: string): string | undefined {
  const v = url.searchParams.get(name);
  return v === null || v === '' ? undefined : v;
}

function limitOf(url: URL): number {
  const raw = url.searchParams.get('limit');
  if (raw === null) return DEFAULT_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT)
    throw new HttpError('BAD_REQUEST', `limit must be an integer 1..${MAX_LIMIT}`);
  return n;
}

/** The `filter` parameter; listing defaults to everything, deleting requires it. */
function filterOf(url: URL, defaulted = true): string {
  const f = url.searchParams.get('filter');
  if (f !== null && f !== '') return f;
  if (defaulted) return '#';
  throw new HttpError('BAD_REQUEST', 'filter is required (use # to delete every retained message)');
}

async function readJson(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type))
    throw new HttpError('UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new HttpError('TOO_LARGE', `the body exceeds ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError('BAD_REQUEST', 'the body is not valid JSON');
  }
}

function bad(message: string): HttpError {
  return new HttpError('BAD_REQUEST', message);
}

/** Checks a publish request body: { topic, payload, encoding?, qos?, retain?, properties? }. */
function publishOf(body: unknown): AdminPublish {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw bad('the body must be an object');
  const b = body as Record<string, unknown>;
  if (typeof b.topic !== 'string' || b.topic.length === 0) throw bad('topic must be a non-empty string');
  const encoding = b.encoding ?? 'utf8';
  if (encoding !== 'utf8' && encoding !== 'base64') throw bad('encoding must be utf8 or base64');
  const payloadText = b.payload ?? '';
  if (typeof payloadText !== 'string') throw bad('payload must be a string');
  const qos = b.qos ?? 0;
  if (qos !== 0 && qos !== 1 && qos !== 2) throw bad('qos must be 0, 1 or 2');
  const retain = b.retain ?? false;
  if (typeof retain !== 'boolean') throw bad('retain must be true or false');
  const out: AdminPublish = {
    topic: b.topic,
    payload: Buffer.from(payloadText, encoding),
    qos: qos as QoS,
    retain,
  };
  if (b.properties !== undefined) Object.assign(out, propertiesOf(b.properties));
  return out;
}

function propertiesOf(raw: unknown): Pick<AdminPublish, 'properties' | 'messageExpiryInterval'> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw bad('properties must be an object');
  const p = raw as Record<string, unknown>;
  const props: Properties = {};
  const known = new Set([
    'contentType',
    'responseTopic',
    'correlationData',
    'payloadFormatIndicator',
    'userProperties',
    'messageExpiryInterval',
  ]);
  for (const key of Object.keys(p)) if (!known.has(key)) throw bad(`unknown property: ${key}`);
  if (p.contentType !== undefined) props.contentType = stringProp(p.contentType, 'contentType');
  if (p.responseTopic !== undefined) props.responseTopic = stringProp(p.responseTopic, 'responseTopic');
  if (p.correlationData !== undefined)
    props.correlationData = Buffer.from(stringProp(p.correlationData, 'correlationData'), 'base64');
  if (p.payloadFormatIndicator !== undefined) {
    if (p.payloadFormatIndicator !== 0 && p.payloadFormatIndicator !== 1)
      throw bad('payloadFormatIndicator must be 0 or 1');
    props.payloadFormatIndicator = p.payloadFormatIndicator;
  }
  if (p.userProperties !== undefined) {
    // An object ({"k": "v"}) or, for repeated names, a list of [name, value] pairs.
    const u = p.userProperties;
    if (typeof u !== 'object' || u === null) throw bad('userProperties must be an object or a list of pairs');
    const entries = Array.isArray(u) ? u : Object.entries(u);
    props.userProperties = entries.map((pair: unknown) => {
      if (!Array.isArray(pair) || pair.length !== 2) throw bad('userProperties pairs are [name, value]');
      return [stringProp(pair[0], 'userProperties name'), stringProp(pair[1], `userProperties.${pair[0]}`)];
    });
  }
  let expiry: number | undefined;
  if (p.messageExpiryInterval !== undefined) {
    const e = p.messageExpiryInterval;
    if (typeof e !== 'number' || !Number.isInteger(e) || e < 1 || e > 0xffffffff)
      throw bad('messageExpiryInterval must be an integer 1..4294967295');
    expiry = e;
  }
  return {
    ...(Object.keys(props).length > 0 ? { properties: props } : {}),
    ...(expiry !== undefined ? { messageExpiryInterval: expiry } : {}),
  };
}

function stringProp(v: unknown, name: string): string {
  if (typeof v !== 'string') throw bad(`${name} must be a string`);
  return v;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** A path segment's percent-encoding decoded; one that is not valid (`%ZZ`, a cut UTF-8 sequence) is a 400. */
function decodePathPart(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError('BAD_REQUEST', 'the path is not valid percent-encoded UTF-8');
  }
}

const BAN_KINDS = new Set(['clientId', 'username', 'address']);

/** Checks a ban request body: { kind, value, reason?, seconds? }. */
function banOf(body: unknown): {
  kind: Ban['kind'];
  value: string;
  reason?: string;
  seconds?: number;
  by: string;
} {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw bad('the body must be an object');
  const b = body as Record<string, unknown>;
  if (typeof b.kind !== 'string' || !BAN_KINDS.has(b.kind))
    throw bad('kind must be clientId, username or address');
  if (typeof b.value !== 'string' || b.value.length === 0) throw bad('value must be a non-empty string');
  if (b.kind === 'address') {
    const problem = addressEntryProblem(b.value);
    if (problem !== undefined) throw bad(`value: ${problem}`);
  }
  if (b.reason !== undefined && typeof b.reason !== 'string') throw bad('reason must be a string');
  if (
    b.seconds !== undefined &&
    (typeof b.seconds !== 'number' || !Number.isInteger(b.seconds) || b.seconds < 1)
  )
    throw bad('seconds must be a positive integer (leave it out for a ban without end)');
  return {
    kind: b.kind as Ban['kind'],
    value: b.value,
    reason: b.reason as string | undefined,
    seconds: b.seconds as number | undefined,
    by: 'admin',
  };
}
