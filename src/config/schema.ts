/**
 * The one configuration schema: every key Shoal reads, with its type, default and allowed range.
 *
 * `validateConfig` walks an untrusted object (file, environment and flags already merged by
 * load.ts), rejects unknown keys, collects every problem with its key path, and returns a deeply
 * frozen Config. Units are in the names. docs/configuration.md is the reference for operators;
 * test/unit/config/docs.test.ts keeps it listing every key.
 */
import { type BrokerOptions, defaultBrokerOptions } from '../broker/options.js';
import type { AutoSubscribeRule } from '../extensions/auto-subscribe.js';
import type { RewriteRule } from '../extensions/topic-rewrite.js';
import { defaultLimitOptions, type LimitOptions, RATE_LIMIT_ACTIONS } from '../limits/options.js';
import { isValidTopicFilter } from '../topics/index.js';
import { addressEntryProblem } from '../transport/address.js';
import { ConfigError, type ConfigIssue } from './errors.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface TlsConfig {
  /** MQTT over TLS listener; 0 = off (8883 is the conventional port). */
  readonly port: number;
  /** MQTT over secure WebSocket listener (same `wsPath`); 0 = off. */
  readonly wssPort: number;
  /** PEM certificate chain; required when `port` or `wssPort` is set. */
  readonly certFile: string | null;
  /** PEM private key; required when `port` or `wssPort` is set. */
  readonly keyFile: string | null;
  /** PEM CA bundle used to verify client certificates (system CAs when null). */
  readonly caFile: string | null;
  /** Ask clients for a certificate during the handshake. */
  readonly requestClientCert: boolean;
  /** Refuse clients whose certificate does not verify (only matters with `requestClientCert`). */
  readonly rejectUnauthorized: boolean;
  /**
   * Read the certificate, key and CA again when they change on disk (a renewal, a Secret update);
   * SIGHUP reads them either way. New handshakes get the new certificate; open connections stay.
   */
  readonly watchFiles: boolean;
}

/** Cluster mode settings (used when `redis` is set). */
export interface ClusterConfig {
  /** How often a node refreshes its heartbeat in Redis. */
  readonly heartbeatMs: number;
  /** A node whose heartbeat is older than this is dead: a survivor removes its routes. */
  readonly livenessTimeoutMs: number;
  /** Prefix of every Redis key, so several clusters can share one Redis. */
  readonly keyPrefix: string;
  /**
   * Redis replicas that must hold a QoS >= 1 message sent to another node before its publisher is
   * acknowledged (Redis WAIT); 0 = acknowledge once the master accepted it. Redis replicates
   * asynchronously: without this, a failover can lose acknowledged messages.
   */
  readonly replicaAcks: number;
  /** How long to wait for those replicas; a message not replicated in time is refused (v5 0x80, v3 disconnect). */
  readonly replicaAckTimeoutMs: number;
  /** Batches a node's inbox stream may hold unread before publishers to it wait (their PUBACK / PUBREC). */
  readonly inboxMaxLength: number;
  /**
   * How many partitions the cluster's routes, retained messages, their logs and persistent
   * sessions' routes are split into (each in its own Redis Cluster slot, spread over the masters);
   * 0 = the data set's own, or for a new one 6 on Redis Cluster and 1 otherwise. Fixed for a data
   * set by its first node: a node configured otherwise refuses to start.
   */
  readonly partitions: number;
}

/** Graceful drain on SIGTERM / SIGINT (see docs/deployment.md). */
export interface DrainConfig {
  /** Clients disconnected per second while draining; 0 = all at once. */
  readonly ratePerSecond: number;
  /** MQTT 5: sent as Server Reference with DISCONNECT 0x9C (Use another server) instead of 0x8B. */
  readonly serverReference: string | null;
  /** How long /readyz answers 503 before the listeners stop accepting (load balancers notice first). */
  readonly notReadyDelayMs: number;
}

/** A single node's state on disk (docs/configuration.md "Persistence"); a cluster keeps it in Redis. */
export interface PersistenceConfig {
  /** Directory of the embedded store; null = in memory only (lost on restart). Ignored with `redis`. */
  readonly dir: string | null;
  /**
   * When acknowledged changes reach the disk (both before the acknowledgement): `batch` = one fsync
   * per event-loop turn shared by every change of the turn; `always` = one fsync per change.
   */
  readonly sync: 'always' | 'batch';
}

/** The admin API on the HTTP port (docs/admin-api.md). */
export interface AdminConfig {
  /** Serve /api/v1/... at all. */
  readonly enabled: boolean;
  /** Bearer token every admin request must carry; null = admin requests only from loopback. Never logged. */
  readonly token: string | null;
  /** A second bearer token that may only read (GET: lists, a client, the log level). Never logged. */
  readonly readOnlyToken: string | null;
}

/** JSON Web Tokens given as the CONNECT password (docs/security.md). */
export interface JwtConfig {
  /** HMAC secret for HS256/384/512 tokens. Never logged. */
  readonly secret: string | null;
  /** PEM public key (SPKI) or certificate for RS*, PS*, ES* and EdDSA tokens. */
  readonly publicKeyFile: string | null;
  /** JSON Web Key Set file; the token's `kid` picks the key. */
  readonly jwksFile: string | null;
  /** Comma-separated algorithms accepted; null = HS256 with a secret, RS256 and ES256 with keys. */
  readonly algorithms: string | null;
  /** Claim naming the user; when the token has it and CONNECT has a user name, they must match. */
  readonly usernameClaim: string;
  /** Claim naming the client id; when the token has it, the CONNECT client id must match. */
  readonly clientIdClaim: string;
  /** Claim holding ACL rules (the ACL file's rule syntax) that narrow what the client may do. */
  readonly aclClaim: string;
  /** Refuse tokens without an `exp` claim. */
  readonly requireExpiry: boolean;
}

/** An HTTP service that answers authentication (and authorization) questions. */
export interface HttpAuthConfig {
  /** URL every question is POSTed to as JSON; null = off. */
  readonly url: string | null;
  readonly timeoutMs: number;
  /** How long an answer is reused; 0 = never cached. */
  readonly cacheTtlMs: number;
  /** Also ask about each PUBLISH topic and SUBSCRIBE filter (answers cached per client and topic). */
  readonly authorize: boolean;
}

/** Per remote address: after a failed login, refuse that address's next logins for a while. */
export interface FailureBackoffConfig {
  readonly enabled: boolean;
  /** The pause after the first failure; it doubles with each further failure. */
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/** Authentication and authorization (docs/security.md). */
export interface AuthConfig {
  /** Refuse clients that present no credential; false lets anonymous clients in. */
  readonly required: boolean;
  /** Password file (`user:$scrypt$...` lines, managed by `shoal passwd`). */
  readonly passwordFile: string | null;
  /** ACL rules file (YAML or JSON). */
  readonly aclFile: string | null;
  /** Reload the password, ACL and key files when they change (they are also reloaded on SIGHUP). */
  readonly watchFiles: boolean;
  readonly jwt: JwtConfig;
  readonly http: HttpAuthConfig;
  /** Take the user name from the verified TLS client certificate: its CN or first SAN. */
  readonly tlsIdentity: 'none' | 'cn' | 'san';
  /** A denied PUBLISH from an MQTT 3.x client: acknowledged and dropped, or the connection closed. */
  readonly v3DeniedPublish: 'drop' | 'disconnect';
  readonly failureBackoff: FailureBackoffConfig;
}

/** The PROXY protocol (v1 and v2) on the TCP and TLS listeners, for clients behind a load balancer. */
export interface ProxyProtocolConfig {
  /** Require a PROXY header on every connection to `port`. */
  readonly tcp: boolean;
  /** Require a PROXY header (before the TLS handshake) on every connection to `tls.port`. */
  readonly tls: boolean;
  /** Load balancers (IPs, CIDR ranges) allowed to connect to those listeners; any other peer is refused. */
  readonly trustedProxies: readonly string[];
  /** How long a connection has to send its whole PROXY header. */
  readonly headerTimeoutMs: number;
}

export interface Config {
  /** Address every listener binds. */
  readonly host: string;
  /** MQTT over TCP; 0 = off. */
  readonly port: number;
  /** MQTT over WebSocket; 0 = off. */
  readonly wsPort: number;
  /** HTTP path that WebSocket upgrades must use (WS and WSS). */
  readonly wsPath: string;
  /** Proxies (IPs, CIDR ranges) whose X-Forwarded-For names the client on WS/WSS; empty = header ignored. */
  readonly wsTrustedProxies: readonly string[];
  /** /metrics, /healthz and /readyz; 0 = off. */
  readonly httpPort: number;
  /** Redis URL for cluster mode; null = single node in memory. May hold a password: never logged. */
  readonly redis: string | null;
  /** This node's id in a cluster; null = generated at start. */
  readonly nodeId: string | null;
  readonly logLevel: LogLevel;
  readonly tls: TlsConfig;
  readonly cluster: ClusterConfig;
  readonly mqtt: Readonly<BrokerOptions>;
  readonly proxyProtocol: ProxyProtocolConfig;
  /** Overload protection (docs/security.md). */
  readonly limits: Readonly<LimitOptions>;
  readonly auth: AuthConfig;
  readonly drain: DrainConfig;
  readonly persistence: PersistenceConfig;
  readonly admin: AdminConfig;
  /** Longest a graceful shutdown may take before the process stops waiting for clients. */
  readonly shutdownTimeoutMs: number;
  /** Subscriptions every client gets on connect (src/extensions/auto-subscribe.ts). */
  readonly autoSubscribe: readonly AutoSubscribeRule[];
  /** Topic rewrite rules for PUBLISH and SUBSCRIBE (src/extensions/topic-rewrite.ts). */
  readonly topicRewrite: readonly RewriteRule[];
  /** Flapping detection (src/extensions/bans.ts). */
  readonly flapping: FlappingConfig;
  /** Delayed publish (src/extensions/delayed.ts). */
  readonly delayed: DelayedConfig;
}

/** `$delayed/<seconds>/<topic>`: stored and published when due. */
export interface DelayedConfig {
  readonly enabled: boolean;
  readonly maxMessages: number;
  readonly maxDelaySeconds: number;
}

/** A client id connecting more than maxConnects times in windowSeconds is banned for banSeconds. */
export interface FlappingConfig {
  readonly enabled: boolean;
  readonly maxConnects: number;
  readonly windowSeconds: number;
  readonly banSeconds: number;
}

/** One leaf of the schema. */
export interface Field<T> {
  readonly kind: 'field';
  /** For messages and docs: `integer 0..65535`, `boolean`, `string or null`. */
  readonly type: string;
  readonly default: T;
  /** The problem with `value`, or undefined when it is a valid T. */
  check(value: unknown): string | undefined;
  /** Turns an environment or flag string into a candidate value; `check` still judges it. */
  fromString(text: string): unknown;
}

type Leaf = string | number | boolean | null | readonly string[] | readonly object[];

/** A schema mirrors its config type: a Field for each leaf, a nested Schema for each section. */
export type Schema<T> = { readonly [K in keyof T]-?: [T[K]] extends [Leaf] ? Field<T[K]> : Schema<T[K]> };

/** A value for error messages. Only used by fields whose values are not secret. */
function shown(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

function integer(min: number, max: number, defaultValue: number): Field<number> {
  const type = `integer ${min}..${max}`;
  return {
    kind: 'field',
    type,
    default: defaultValue,
    check: (v) =>
      typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
        ? undefined
        : `must be an ${type}, got ${shown(v)}`,
    fromString: (text) => (/^[+-]?\d+$/.test(text.trim()) ? Number(text) : text),
  };
}

const port = (defaultValue: number): Field<number> => integer(0, 65535, defaultValue);

function boolean(defaultValue: boolean): Field<boolean> {
  return {
    kind: 'field',
    type: 'boolean',
    default: defaultValue,
    check: (v) => (typeof v === 'boolean' ? undefined : `must be true or false, got ${shown(v)}`),
    fromString: (text) => (text === 'true' ? true : text === 'false' ? false : text),
  };
}

function oneOf<T extends string | number>(values: readonly T[], defaultValue: T): Field<T> {
  const numeric = values.every((v) => typeof v === 'number');
  return {
    kind: 'field',
    type: values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(' | '),
    default: defaultValue,
    check: (v) =>
      (values as readonly unknown[]).includes(v)
        ? undefined
        : `must be one of ${values.join(', ')}, got ${shown(v)}`,
    fromString: (text) => (numeric && /^\d+$/.test(text.trim()) ? Number(text) : text),
  };
}

/** A non-empty string. The value is never echoed in messages: it may be a URL holding a password. */
function text(defaultValue: string, rule?: { test: (s: string) => boolean; problem: string }): Field<string> {
  return {
    kind: 'field',
    type: 'string',
    default: defaultValue,
    check: (v) => {
      if (typeof v !== 'string' || v.length === 0) return 'must be a non-empty string';
      return rule === undefined || rule.test(v) ? undefined : rule.problem;
    },
    fromString: (s) => s,
  };
}

/** A list of IP addresses and CIDR ranges (`10.0.0.0/8`, `fd00::/8`); a string is split at commas. */
function addressList(defaultValue: readonly string[]): Field<readonly string[]> {
  return {
    kind: 'field',
    type: 'list of IP addresses / CIDR ranges',
    default: defaultValue,
    check: (v) => {
      if (!Array.isArray(v)) return `must be a list of IP addresses or CIDR ranges, got ${shown(v)}`;
      for (const entry of v) {
        if (typeof entry !== 'string') return `must hold strings, got ${shown(entry)}`;
        const problem = addressEntryProblem(entry);
        if (problem !== undefined) return problem;
      }
      return undefined;
    },
    fromString: (s) =>
      s
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e.length > 0),
  };
}

/**
 * A list of rule objects: each a map of exactly the keys `fields` names, each key's value judged by
 * its Field (a missing key takes the Field's default). Lists come from the config file only.
 */
function ruleList<T extends object>(
  what: string,
  fields: Record<string, Field<unknown>>,
  extra?: (rule: Record<string, unknown>) => string | undefined,
): Field<readonly T[]> {
  return {
    kind: 'field',
    type: `list of ${what}`,
    default: [],
    check: (v) => {
      if (!Array.isArray(v)) return `must be a list of ${what}, got ${shown(v)}`;
      for (let i = 0; i < v.length; i++) {
        const rule = v[i] as unknown;
        if (!isMap(rule)) return `[${i}] must be a map, got ${shown(rule)}`;
        for (const key of Object.keys(rule))
          if (!Object.hasOwn(fields, key))
            return `[${i}].${key} is not a key of ${what} (${Object.keys(fields).join(', ')})`;
        for (const [key, field] of Object.entries(fields)) {
          const value = Object.hasOwn(rule, key) ? rule[key] : field.default;
          if (value === REQUIRED) return `[${i}].${key} is required`;
          const problem = field.check(value);
          if (problem !== undefined) return `[${i}].${key} ${problem}`;
        }
        const problem = extra?.(rule);
        if (problem !== undefined) return `[${i}] ${problem}`;
      }
      return undefined;
    },
    fromString: (s) => s,
  };
}

/** A ruleList key without a default. */
const REQUIRED = Symbol('required');
function required<T>(field: Field<T>): Field<T> {
  return { ...field, default: REQUIRED as unknown as T };
}

const TOPIC_FILTER = {
  test: (s: string) => isValidTopicFilter(s),
  problem: 'must be a valid MQTT topic filter',
};
const REGEX = {
  test: (s: string) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  },
  problem: 'must be a valid regular expression',
};
const PLACEHOLDER_FILTER = {
  test: (s: string) => isValidTopicFilter(s.replace(/%[cu]/g, 'x')),
  problem: 'must be a valid MQTT topic filter once %c and %u are filled in',
};

function optionalText(rule?: { test: (s: string) => boolean; problem: string }): Field<string | null> {
  const inner = text('', rule);
  return {
    kind: 'field',
    type: 'string or null',
    default: null,
    check: (v) => (v === null ? undefined : inner.check(v)),
    fromString: (s) => s,
  };
}

const REDIS_URL = {
  test: (s: string) => /^(rediss?|redis\+sentinel|redis\+cluster):\/\/[^/]/.test(s),
  problem: 'must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL',
};
const KEY_PREFIX = {
  test: (s: string) => /^[A-Za-z0-9._-]{1,32}$/.test(s),
  problem: 'must be 1..32 characters from A-Z a-z 0-9 . _ -',
};
const NODE_ID = {
  test: (s: string) => /^[A-Za-z0-9._-]{1,64}$/.test(s),
  problem: 'must be 1..64 characters from A-Z a-z 0-9 . _ -',
};
const ADMIN_TOKEN = {
  test: (s: string) => s.length >= 16 && s.length <= 4096 && /^[\x21-\x7e]+$/.test(s),
  problem: 'must be 16..4096 printable ASCII characters without spaces',
};
const SERVER_REFERENCE = {
  test: (s: string) => Buffer.byteLength(s) <= 65535,
  problem: 'must be at most 65535 bytes',
};
export const JWT_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
const ALGORITHM_LIST = {
  test: (s: string) => s.split(',').every((a) => (JWT_ALGORITHMS as readonly string[]).includes(a.trim())),
  problem: `must be a comma-separated list of ${JWT_ALGORITHMS.join(', ')}`,
};
const HTTP_URL = {
  test: (s: string) => /^https?:\/\/[^/]/.test(s),
  problem: 'must be an http:// or https:// URL',
};
const HTTP_PATH = { test: (s: string) => s.startsWith('/'), problem: 'must start with "/"' };

const d = defaultBrokerOptions;
const l = defaultLimitOptions;

export const configSchema: Schema<Config> = {
  host: text('0.0.0.0'),
  port: port(1883),
  wsPort: port(8083),
  wsPath: text('/mqtt', HTTP_PATH),
  wsTrustedProxies: addressList([]),
  autoSubscribe: ruleList<AutoSubscribeRule>('auto-subscribe rules', {
    topic: required(text('x', PLACEHOLDER_FILTER)),
    qos: oneOf([0, 1, 2] as const, 0),
    noLocal: boolean(false),
    retainAsPublished: boolean(false),
    retainHandling: oneOf([0, 1, 2] as const, 0),
  }),
  delayed: {
    enabled: boolean(true),
    maxMessages: integer(1, 100_000_000, 100_000),
    // EMQX's bound: 4,294,967 s (about 49.7 days).
    maxDelaySeconds: integer(0, 4_294_967, 4_294_967),
  },
  flapping: {
    enabled: boolean(false),
    maxConnects: integer(1, 1_000_000, 15),
    windowSeconds: integer(1, 86_400, 60),
    banSeconds: integer(1, 31_536_000, 300),
  },
  topicRewrite: ruleList<RewriteRule>('topic rewrite rules', {
    action: oneOf(['publish', 'subscribe', 'all'] as const, 'all'),
    sourceTopic: required(text('x', TOPIC_FILTER)),
    regex: required(text('x', REGEX)),
    destTopic: required(text('x')),
  }),
  httpPort: port(9090),
  redis: optionalText(REDIS_URL),
  nodeId: optionalText(NODE_ID),
  logLevel: oneOf(LOG_LEVELS, 'info'),
  tls: {
    port: port(0),
    wssPort: port(0),
    certFile: optionalText(),
    keyFile: optionalText(),
    caFile: optionalText(),
    requestClientCert: boolean(false),
    rejectUnauthorized: boolean(true),
    watchFiles: boolean(true),
  },
  cluster: {
    heartbeatMs: integer(100, 60_000, 1000),
    livenessTimeoutMs: integer(500, 600_000, 5000),
    keyPrefix: text('shoal', KEY_PREFIX),
    replicaAcks: integer(0, 16, 0),
    replicaAckTimeoutMs: integer(10, 60_000, 1000),
    inboxMaxLength: integer(1, 10_000_000, 10_000),
    // At most 64 (MAX_PARTITIONS in src/backend/redis/keys.ts).
    partitions: integer(0, 64, 0),
  },
  mqtt: {
    // 268 435 455 is the largest Remaining Length; 5 more bytes of fixed header make the largest packet.
    maxPacketSizeBytes: integer(64, 268_435_460, d.maxPacketSizeBytes),
    // Receive Maximum 0 is a Protocol Error (MQTT 5 §3.2.2.3.3).
    receiveMaximum: integer(1, 65535, d.receiveMaximum),
    topicAliasMaximum: integer(0, 65535, d.topicAliasMaximum),
    maxKeepAliveSeconds: integer(0, 65535, d.maxKeepAliveSeconds),
    maximumQoS: oneOf([0, 1, 2] as const, d.maximumQoS),
    retainAvailable: boolean(d.retainAvailable),
    wildcardSubscriptionAvailable: boolean(d.wildcardSubscriptionAvailable),
    subscriptionIdentifiersAvailable: boolean(d.subscriptionIdentifiersAvailable),
    sharedSubscriptionAvailable: boolean(d.sharedSubscriptionAvailable),
    maxSessionExpirySeconds: integer(0, 0xffffffff, d.maxSessionExpirySeconds),
    maxQueuedMessages: integer(0, 10_000_000, d.maxQueuedMessages),
    // Packet identifiers are 16-bit, so no more than 65535 can be in flight.
    maxInflightMessages: integer(1, 65535, d.maxInflightMessages),
    initialInflightMessages: integer(1, 65535, d.initialInflightMessages),
    // At least one large message must fit.
    maxInflightBytes: integer(4096, 2 ** 31 - 1, d.maxInflightBytes),
    connectTimeoutMs: integer(100, 600_000, d.connectTimeoutMs),
    // At least the sockets' write high-water mark (64 KiB from Node 22 on): a smaller buffer can fill
    // without the socket ever emitting 'drain', and the client's queue and reads would stall for good.
    slowClientBufferBytes: integer(65_536, 2 ** 31 - 1, d.slowClientBufferBytes),
    sysIntervalSeconds: integer(0, 86_400, d.sysIntervalSeconds),
    // [MQTT-3.1.3-5] a server must accept client identifiers of 1 to 23 bytes.
    maxClientIdLength: integer(23, 65535, d.maxClientIdLength),
  },
  auth: {
    required: boolean(false),
    passwordFile: optionalText(),
    aclFile: optionalText(),
    watchFiles: boolean(true),
    jwt: {
      secret: optionalText(),
      publicKeyFile: optionalText(),
      jwksFile: optionalText(),
      algorithms: optionalText(ALGORITHM_LIST),
      usernameClaim: text('sub'),
      clientIdClaim: text('client_id'),
      aclClaim: text('acl'),
      requireExpiry: boolean(true),
    },
    http: {
      url: optionalText(HTTP_URL),
      timeoutMs: integer(50, 60_000, 1000),
      cacheTtlMs: integer(0, 86_400_000, 30_000),
      authorize: boolean(true),
    },
    tlsIdentity: oneOf(['none', 'cn', 'san'] as const, 'none'),
    v3DeniedPublish: oneOf(['drop', 'disconnect'] as const, 'drop'),
    failureBackoff: {
      enabled: boolean(false),
      initialDelayMs: integer(1, 3_600_000, 1000),
      maxDelayMs: integer(1, 86_400_000, 60_000),
    },
  },
  drain: {
    ratePerSecond: integer(0, 1_000_000, 0),
    serverReference: optionalText(SERVER_REFERENCE),
    notReadyDelayMs: integer(0, 600_000, 0),
  },
  persistence: {
    dir: optionalText(),
    sync: oneOf(['always', 'batch'] as const, 'batch'),
  },
  admin: {
    enabled: boolean(true),
    token: optionalText(ADMIN_TOKEN),
    readOnlyToken: optionalText(ADMIN_TOKEN),
  },
  proxyProtocol: {
    tcp: boolean(false),
    tls: boolean(false),
    trustedProxies: addressList([]),
    headerTimeoutMs: integer(100, 60_000, 3000),
  },
  limits: {
    maxConnections: integer(0, 10_000_000, l.maxConnections),
    connectRatePerSecond: integer(0, 1_000_000, l.connectRatePerSecond),
    connectBurst: integer(0, 10_000_000, l.connectBurst),
    maxConcurrentClaims: integer(0, 1_000_000, l.maxConcurrentClaims),
    maxQueuedClaims: integer(0, 10_000_000, l.maxQueuedClaims),
    claimQueueTimeoutMs: integer(100, 600_000, l.claimQueueTimeoutMs),
    clientMessagesPerSecond: integer(0, 10_000_000, l.clientMessagesPerSecond),
    clientMessageBurst: integer(0, 100_000_000, l.clientMessageBurst),
    clientBytesPerSecond: integer(0, 2 ** 31 - 1, l.clientBytesPerSecond),
    clientByteBurst: integer(0, 2 ** 31 - 1, l.clientByteBurst),
    rateLimitAction: oneOf(RATE_LIMIT_ACTIONS, l.rateLimitAction),
    maxSubscriptionsPerClient: integer(0, 10_000_000, l.maxSubscriptionsPerClient),
    maxWildcardSubscriptionsPerClient: integer(0, 10_000_000, l.maxWildcardSubscriptionsPerClient),
    maxTopicLevels: integer(0, 65535, l.maxTopicLevels),
    maxTopicLengthBytes: integer(0, 65535, l.maxTopicLengthBytes),
    maxRetainedMessages: integer(0, 1_000_000_000, l.maxRetainedMessages),
    maxRetainedPayloadBytes: integer(0, 268_435_455, l.maxRetainedPayloadBytes),
    tcpKeepAliveSeconds: integer(0, 86_400, l.tcpKeepAliveSeconds),
    user: {
      maxConnections: integer(0, 10_000_000, l.user.maxConnections),
      messagesPerMinute: integer(0, 2 ** 31 - 1, l.user.messagesPerMinute),
    },
  },
  shutdownTimeoutMs: integer(0, 3_600_000, 10_000),
};

function isField(node: unknown): node is Field<unknown> {
  return (node as Field<unknown>).kind === 'field';
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every leaf of the schema with its dotted path, in declaration order. */
export function configFields(): Array<{ path: string; field: Field<unknown> }> {
  const out: Array<{ path: string; field: Field<unknown> }> = [];
  const walk = (node: object, prefix: string) => {
    for (const [key, child] of Object.entries(node)) {
      const path = prefix + key;
      if (isField(child)) out.push({ path, field: child });
      else walk(child, `${path}.`);
    }
  };
  walk(configSchema, '');
  return out;
}

/** The field at a dotted path, or undefined. */
export function fieldAt(path: string): Field<unknown> | undefined {
  let node: unknown = configSchema;
  for (const key of path.split('.')) {
    if (!isMap(node) || isField(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return isField(node) ? node : undefined;
}

export interface ValidateOptions {
  /** Names the flag or environment variable a key path came from, for messages. */
  sourceOf?(path: string): string | undefined;
}

/**
 * Checks `input` against the schema, fills defaults and returns a frozen Config.
 * Throws a ConfigError listing every problem, each naming its key path.
 */
export function validateConfig(input: unknown, options: ValidateOptions = {}): Config {
  const issues: ConfigIssue[] = [];
  const report = (path: string, problem: string) =>
    issues.push({ path, problem, source: options.sourceOf?.(path) });

  const walk = (schema: object, value: unknown, prefix: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    // A YAML section left empty (`mqtt:`) parses as null: treat it as an empty section.
    const given = value === undefined || value === null ? {} : value;
    if (!isMap(given)) {
      report(
        prefix === '' ? 'config' : prefix.slice(0, -1),
        `must be a map of settings, got ${shown(given)}`,
      );
      return out;
    }
    for (const key of Object.keys(given)) {
      if (!Object.hasOwn(schema, key)) report(prefix + key, 'unknown key');
    }
    for (const [key, node] of Object.entries(schema)) {
      const path = prefix + key;
      const v = Object.hasOwn(given, key) ? given[key] : undefined;
      if (!isField(node)) {
        out[key] = walk(node, v, `${path}.`);
      } else if (v === undefined) {
        out[key] = node.default;
      } else {
        const problem = node.check(v);
        if (problem !== undefined) report(path, problem);
        out[key] = v;
      }
    }
    return out;
  };

  const config = walk(configSchema, input, '') as unknown as Config;
  if (issues.length === 0) checkRelations(config, report);
  if (issues.length > 0) throw new ConfigError(issues);
  return deepFreeze(config);
}

/** Rules that involve more than one key. */
function checkRelations(config: Config, report: (path: string, problem: string) => void): void {
  const { tls } = config;
  const pp = config.proxyProtocol;
  if ((pp.tcp || pp.tls) && pp.trustedProxies.length === 0) {
    // Every connection would be refused: PROXY headers are believed only from trusted proxies.
    report(
      'proxyProtocol.trustedProxies',
      'must list the load balancers when proxyProtocol.tcp or .tls is on',
    );
  }
  if (tls.port > 0 || tls.wssPort > 0) {
    if (tls.certFile === null) report('tls.certFile', 'required when tls.port or tls.wssPort is set');
    if (tls.keyFile === null) report('tls.keyFile', 'required when tls.port or tls.wssPort is set');
  }
  if (config.cluster.livenessTimeoutMs < 2 * config.cluster.heartbeatMs) {
    report('cluster.livenessTimeoutMs', 'must be at least twice cluster.heartbeatMs');
  }
  const { auth } = config;
  if (auth.tlsIdentity !== 'none' && !tls.requestClientCert) {
    report('auth.tlsIdentity', 'needs tls.requestClientCert: true (no certificate is asked for otherwise)');
  }
  const { jwt } = auth;
  if (jwt.algorithms !== null && jwt.secret === null && jwt.publicKeyFile === null && jwt.jwksFile === null) {
    report('auth.jwt.algorithms', 'needs auth.jwt.secret, auth.jwt.publicKeyFile or auth.jwt.jwksFile');
  }
  if (auth.failureBackoff.maxDelayMs < auth.failureBackoff.initialDelayMs) {
    report('auth.failureBackoff.maxDelayMs', 'must be at least auth.failureBackoff.initialDelayMs');
  }
  const listeners: Array<[string, number]> = [
    ['port', config.port],
    ['wsPort', config.wsPort],
    ['httpPort', config.httpPort],
    ['tls.port', tls.port],
    ['tls.wssPort', tls.wssPort],
  ];
  const taken = new Map<number, string>();
  for (const [path, value] of listeners) {
    if (value === 0) continue;
    const other = taken.get(value);
    if (other !== undefined) report(path, `${value} is already used by ${other}`);
    else taken.set(value, path);
  }
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
}

/** The configuration with every default. */
export const defaultConfig: Config = validateConfig({});
