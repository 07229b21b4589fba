/**
 * The Lua scripts, one file each in lua/, and the one typed way to call them. Every multi-key change
 * is one atomic script, and every change to the route table or retained messages appends to its log
 * stream in the same step, so replicas never miss one. Each file's header says its KEYS, ARGV and
 * reply; the entries below fix the keys each takes and the shape of its reply.
 *
 * The files are read once, when this module loads. A line `--! include <name>` stands for the
 * fragment lua/include/<name>, and `{{NAME}}` for the constant NAME of CONSTANTS: a value the
 * TypeScript code shares with a script has its one definition here.
 *
 * A script is called by SHA, as an ioredis custom command (SCRIPT_COMMANDS, defined on every client
 * connect.ts makes): ioredis sends EVAL the first time on each connection (Redis loads the script),
 * EVALSHA after that, and the call again as EVAL when Redis answers NOSCRIPT (SCRIPT FLUSH, a
 * failed-over master that never saw the script). This holds on Redis, Sentinel and Cluster clients
 * (per node connection), auto-pipelined or in a pipeline or transaction.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DEDUPE_MAX, DEDUPE_WINDOW_MS } from '../../message.js';
import type { RedisClient, RedisPipeline } from './connect.js';

/**
 * The largest encoded retained message the retained log carries itself (op s); a larger one is
 * logged as op h (its topic only: readers take the body from the retained hash). So the log, capped
 * at about logMaxLen entries, holds at most about logMaxLen x (this + topic) bytes, however large
 * the payloads (#11.12c), and the common small message reaches replicas without a second read.
 */
export const RETAINED_LOG_INLINE_MAX = 256;

/**
 * How long a retained writer's (node run's) last sequence number is kept after its last write. A
 * re-send ioredis makes after a reconnect comes within it; a run that dies leaves nothing for longer.
 */
export const RETAINED_SEQ_KEEP_MS = 86_400_000;

/** Sequence numbers of a retained writer's applied writes kept (retained-set.lua): its re-send window. */
export const RETAINED_SEQ_WINDOW = 1024;

/**
 * How long an owner hash outlives what it still guards (a session, a pending will) once no
 * connection owns it: a claim or a will take in flight when the client left still finds it, and a
 * Redis clock stepped back by less than this keeps epochs rising (include/owner-epoch-next.lua).
 */
export const OWNER_LINGER_MS = 60_000;

/** Append batches a session remembers (session-append.lua): far more than ioredis has in flight to it. */
export const APPLIED_KEEP = 1024;

/** The values scripts take from TypeScript, by placeholder: `{{RETAINED_SEQ_WINDOW}}`. */
export const CONSTANTS: Readonly<Record<string, number>> = {
  RETAINED_LOG_INLINE_MAX,
  RETAINED_SEQ_KEEP_MS,
  RETAINED_SEQ_WINDOW,
  OWNER_LINGER_MS,
  APPLIED_KEEP,
  DEDUPE_WINDOW_MS,
  DEDUPE_MAX,
};

/** Where the .lua files are: beside this module, in src/ as in dist/ (the build copies them). */
export const LUA_DIR = new URL('./lua/', import.meta.url);

const INCLUDE = /^[ \t]*--! include (\S+)[ \t]*$/gm;
const PLACEHOLDER = /\{\{(\w+)\}\}/g;

type Arg = string | Buffer | number;

/** What a script with Buffer replies answers: bulk strings as Buffers, integers as numbers. */
export type BufferReply = Buffer | number | null | BufferReply[];

export interface Script<K extends readonly string[], R> {
  /** Its file in lua/, and the fragments of lua/include/ it takes in (include/<name>). */
  readonly file: string;
  readonly includes: readonly string[];
  /** The text Redis runs (fragments and constants in place) and its SHA1, the name EVALSHA uses. */
  readonly lua: string;
  readonly sha: string;
  run(client: RedisClient, keys: K, ...args: Arg[]): Promise<R>;
  /** Adds the call to a pipeline or transaction: its reply comes with the others from exec(). */
  queue(pipeline: RedisPipeline, keys: K, ...args: Arg[]): RedisPipeline;
}

/** The file's text with its includes in place (each fragment once per script, recorded in `includes`). */
function read(file: string, includes: string[], chain: string[]): string {
  const text = readFileSync(new URL(file, LUA_DIR), 'utf8');
  return text.replace(INCLUDE, (_line, name: string) => {
    const fragment = `include/${name}`;
    if (chain.includes(fragment)) throw new Error(`lua/${file}: ${fragment} includes itself`);
    if (!includes.includes(fragment)) includes.push(fragment);
    return read(fragment, includes, [...chain, fragment]).trimEnd();
  });
}

type Command = (...args: Arg[]) => unknown;
type Commander = Record<string, Command> & {
  defineCommand(name: string, definition: { lua: string; numberOfKeys: number }): void;
};

/**
 * Every script as ioredis custom commands, `shoal:<file>/<key count>` (one per key count it takes),
 * for the `scripts` option of the clients connect.ts makes. The key count is fixed in a definition,
 * so a call's first argument is its first key: ioredis routes an auto-pipelined call on Redis
 * Cluster by it. An auto-pipelining client must have them from the start: a pipeline it made
 * earlier in the same tick lacks a command defined after.
 */
export const SCRIPT_COMMANDS: Record<string, { lua: string; numberOfKeys: number }> = {};

/** Defines the scripts on a client (or pipeline) made without them (a test's); connect.ts's have them. */
function defineAll(target: Commander): void {
  const { options, isPipeline } = target as unknown as {
    options?: { enableAutoPipelining?: boolean };
    isPipeline?: boolean;
  };
  if (options?.enableAutoPipelining === true && isPipeline !== true)
    throw new Error('an auto-pipelining Redis client needs SCRIPT_COMMANDS when it is made (connect.ts)');
  for (const [name, definition] of Object.entries(SCRIPT_COMMANDS))
    if (typeof target[name] !== 'function') target.defineCommand(name, definition);
}

/** `keyCount`: how many keys it takes, as its key tuple K says (will-take.lua: one or two). */
function script<K extends readonly string[], R>(
  file: string,
  keyCount: K['length'] | readonly K['length'][],
  replies: 'string' | 'buffer' = 'string',
): Script<K, R> {
  const includes: string[] = [];
  const lua = read(file, includes, [file]).replace(PLACEHOLDER, (_match, name: string) => {
    if (!Object.hasOwn(CONSTANTS, name)) throw new Error(`lua/${file}: no constant ${name}`);
    return String(CONSTANTS[name]);
  });
  // Per key count, the method to call (ioredis adds `<name>Buffer` for Buffer replies).
  const methods = new Map<number, string>();
  for (const numberOfKeys of typeof keyCount === 'number' ? [keyCount] : keyCount) {
    const name = `shoal:${file.slice(0, -'.lua'.length)}/${numberOfKeys}`;
    SCRIPT_COMMANDS[name] = { lua, numberOfKeys };
    methods.set(numberOfKeys, replies === 'buffer' ? `${name}Buffer` : name);
  }
  const call = (target: RedisClient | RedisPipeline, keys: K, args: Arg[]): unknown => {
    const method = methods.get(keys.length);
    if (method === undefined) throw new Error(`lua/${file} takes no ${keys.length} keys`);
    const t = target as unknown as Commander;
    if (typeof t[method] !== 'function') defineAll(t);
    return t[method](...keys, ...args);
  };
  return {
    file,
    includes,
    lua,
    sha: createHash('sha1').update(lua).digest('hex'),
    run: (client, keys, ...args) => {
      try {
        return call(client, keys, args) as Promise<R>;
      } catch (err) {
        return Promise.reject(err); // a call refused here fails as one Redis refused
      }
    },
    queue: (pipeline, keys, ...args) => {
      call(pipeline, keys, args);
      return pipeline;
    },
  };
}

export type RouteKeys = [nodeRoutes: string, routeLog: string];
export type RouteRunKeys = [nodeRoutes: string, routeLog: string, routeRuns: string];
type NodeKeys = [nodes: string, nodeRuns: string];
type RetainedKeys = [retained: string, retainedLog: string, retainedExpiry: string];
export type SessionKeys = [
  owner: string,
  session: string,
  queue: string,
  inflight: string,
  awaitingRelease: string,
];
type SessionRouteKeys = [sessionRoutes: string, clientRoutes: string, routeLog: string];
/** owner-claim.lua's reply: previous node, epoch, will, discarded, present, fields, in-flight, rel. */
export type ClaimReply = [Buffer | null, number, Buffer | null, number, number, Buffer[], Buffer[], Buffer[]];

export const scripts = {
  routeAdd: script<RouteRunKeys, string>('route-add.lua', 3),
  routeDel: script<RouteKeys, number>('route-del.lua', 2),
  nodeHeartbeat: script<NodeKeys, number>('node-heartbeat.lua', 2),
  nodesScan: script<NodeKeys, (string | number)[]>('nodes-scan.lua', 2),
  nodeRemove: script<[nodes: string, nodeRuns: string, reaping: string], number>('node-remove.lua', 3),
  routeNodeDrop: script<RouteRunKeys, number>('route-node-drop.lua', 3),
  inboxAdd: script<[inbox: string], number>('inbox-add.lua', 1),
  inboxDrop: script<[inbox: string, inboxRun: string], number>('inbox-drop.lua', 2),
  retainedSet: script<
    [retained: string, retainedLog: string, retainedSeq: string, retainedExpiry: string],
    number
  >('retained-set.lua', 4),
  retainedExpire: script<RetainedKeys, number>('retained-expire.lua', 3),
  retainedSweep: script<RetainedKeys, number>('retained-sweep.lua', 3),
  ownerClaim: script<SessionKeys, ClaimReply>('owner-claim.lua', 5, 'buffer'),
  ownerRelease: script<[owner: string, session: string], number | null>('owner-release.lua', 2),
  ownerEpoch: script<[owner: string], number>('owner-epoch.lua', 1),
  willSet: script<[owner: string], number>('will-set.lua', 1),
  willTake: script<[owner: string] | [owner: string, session: string], Buffer | null>(
    'will-take.lua',
    [1, 2],
    'buffer',
  ),
  dueWillAdd: script<[dueWills: string], number>('due-will-add.lua', 1),
  dueWills: script<[dueWills: string], string[]>('due-wills.lua', 1),
  quotaConnAcquire: script<[userConnections: string], number>('quota-conn-acquire.lua', 1),
  quotaConnRenew: script<[userConnections: string], number>('quota-conn-renew.lua', 1),
  quotaMsgAdd: script<[userMessages: string], number>('quota-msg-add.lua', 1),
  sessionAppend: script<
    [session: string, queue: string, dedupe: string, appliedBatches: string, inflight: string],
    BufferReply
  >('session-append.lua', 5, 'buffer'),
  sessionFetch: script<[owner: string, session: string, queue: string, inflight: string], BufferReply>(
    'session-fetch.lua',
    4,
    'buffer',
  ),
  sessionOps: script<SessionKeys, number | null>('session-ops.lua', 5),
  sessionDetach: script<SessionKeys, number | null>('session-detach.lua', 5),
  sessionOrphan: script<SessionKeys, [expiry: number, epoch: number] | null>('session-orphan.lua', 5),
  sessionRoute: script<SessionRouteKeys, number | string>('session-route.lua', 3),
  sessionRoutesDrop: script<SessionRouteKeys, number>('session-routes-drop.lua', 3),
  delayedAdd: script<[delayed: string, delayedMessages: string, delayedFiring: string], number>(
    'delayed-add.lua',
    3,
  ),
  delayedTake: script<[delayed: string, delayedMessages: string, delayedFiring: string], BufferReply>(
    'delayed-take.lua',
    3,
    'buffer',
  ),
  delayedDone: script<[delayedMessages: string, delayedFiring: string], number>('delayed-done.lua', 2),
  delayedCancel: script<[delayed: string, delayedMessages: string], number>('delayed-cancel.lua', 2),
};
