/**
 * ACL rules: who may publish to which topics and subscribe to which filters.
 *
 * A rules document (YAML or JSON) has rule lists for every client (`defaults`), for clients without
 * a user name (`anonymous`), per user (`users`) and per client id (`clients`), and says what happens
 * when no rule matches (`noMatch`, deny by default). A rule is `{ allow | deny: publish | subscribe |
 * both, topic | topics }`; patterns may use `+`, `#`, `%u` (the user name) and `%c` (the client id).
 *
 * Deny wins: a PUBLISH is allowed when an allow rule matches its topic and no deny rule does. A
 * SUBSCRIBE is allowed when an allow rule covers every topic the filter can match, and no deny
 * rule can match any topic the filter matches (so `#` is refused when any deny rule exists).
 *
 * Rules are compiled once per document; the rules of one client (placeholders substituted) and its
 * answers per topic are cached, and the cache is dropped when the document is replaced (a reload).
 */
import { parse as parseYaml } from 'yaml';
import type { ErrorCode } from '../errors.js';
import { isValidTopicFilter, parseSubscription, topicMatches } from '../topics/index.js';
import type { TopicPermissions } from './types.js';

export type AclAction = 'publish' | 'subscribe' | 'both';

export interface AclRule {
  readonly allow: boolean;
  readonly publish: boolean;
  readonly subscribe: boolean;
  /** Topic patterns, placeholders not yet substituted. */
  readonly topics: readonly string[];
}

export interface AclDocument {
  readonly noMatch: 'allow' | 'deny';
  readonly defaults: readonly AclRule[];
  readonly anonymous: readonly AclRule[];
  readonly users: ReadonlyMap<string, readonly AclRule[]>;
  readonly clients: ReadonlyMap<string, readonly AclRule[]>;
}

/** A problem in an ACL document, naming where. */
export class AclError extends Error {
  override readonly name = 'AclError';
  readonly code = 'ACL_INVALID' satisfies ErrorCode;

  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

const ACTIONS: readonly string[] = ['publish', 'subscribe', 'both'];
const SECTIONS = new Set(['noMatch', 'defaults', 'anonymous', 'users', 'clients']);

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses the text of an ACL file (YAML, which reads JSON too). Throws AclError. */
export function parseAcl(text: string): AclDocument {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new AclError('acl', `not valid YAML or JSON: ${String((err as Error).message).split('\n')[0]}`);
  }
  if (data === null || data === undefined) data = {};
  if (!isMap(data)) throw new AclError('acl', 'must be a map with defaults, anonymous, users, clients');
  for (const key of Object.keys(data)) {
    if (!SECTIONS.has(key)) throw new AclError(key, 'unknown key');
  }
  const noMatch = data.noMatch ?? 'deny';
  if (noMatch !== 'allow' && noMatch !== 'deny') throw new AclError('noMatch', 'must be allow or deny');
  const named = (section: 'users' | 'clients') => {
    const value = data[section] ?? {};
    if (!isMap(value)) throw new AclError(section, 'must be a map of names to rule lists');
    const out = new Map<string, AclRule[]>();
    for (const [name, rules] of Object.entries(value)) out.set(name, parseRules(rules, `${section}.${name}`));
    return out;
  };
  return {
    noMatch,
    defaults: parseRules(data.defaults ?? [], 'defaults'),
    anonymous: parseRules(data.anonymous ?? [], 'anonymous'),
    users: named('users'),
    clients: named('clients'),
  };
}

/** Parses a rule list (an ACL file section, or a token's ACL claim). Throws AclError. */
export function parseRules(value: unknown, path: string): AclRule[] {
  if (value === null) return [];
  if (!Array.isArray(value)) throw new AclError(path, 'must be a list of rules');
  return value.map((raw, i) => parseRule(raw, `${path}[${i}]`));
}

function parseRule(raw: unknown, path: string): AclRule {
  if (!isMap(raw))
    throw new AclError(path, 'a rule is a map: { allow | deny: publish | subscribe | both, topic }');
  for (const key of Object.keys(raw)) {
    if (!['allow', 'deny', 'topic', 'topics'].includes(key))
      throw new AclError(`${path}.${key}`, 'unknown key');
  }
  if ((raw.allow === undefined) === (raw.deny === undefined))
    throw new AclError(path, 'needs exactly one of allow or deny');
  const allow = raw.allow !== undefined;
  const action = allow ? raw.allow : raw.deny;
  if (typeof action !== 'string' || !ACTIONS.includes(action))
    throw new AclError(`${path}.${allow ? 'allow' : 'deny'}`, 'must be publish, subscribe or both');
  if ((raw.topic === undefined) === (raw.topics === undefined))
    throw new AclError(path, 'needs exactly one of topic or topics');
  const topics = raw.topic !== undefined ? [raw.topic] : raw.topics;
  if (!Array.isArray(topics) || topics.length === 0)
    throw new AclError(`${path}.topics`, 'must be a non-empty list of topic patterns');
  for (const t of topics) {
    // Placeholders stand for one level's worth of text: check the pattern with them filled in.
    if (typeof t !== 'string' || !isValidTopicFilter(t.replaceAll('%u', 'u').replaceAll('%c', 'c')))
      throw new AclError(`${path}.topic`, `${JSON.stringify(t)} is not a valid topic pattern`);
  }
  return {
    allow,
    publish: action !== 'subscribe',
    subscribe: action !== 'publish',
    topics: topics as string[],
  };
}

// ---- matching ----------------------------------------------------------------------------------

const DOLLAR = 0x24;

/**
 * True when every topic `filter` can match is matched by `pattern`. A wildcard in the filter is
 * covered only by the same or a wider wildcard; leading wildcards do not reach `$` topics.
 */
export function filterCovers(pattern: string, filter: string): boolean {
  const p = pattern.split('/');
  const f = filter.split('/');
  if (filter.charCodeAt(0) === DOLLAR && (p[0] === '+' || p[0] === '#')) return false;
  for (let i = 0; ; i++) {
    const pl = p[i];
    const fl = f[i];
    if (pl === '#') return true;
    if (pl === undefined || fl === undefined) return pl === fl;
    if (fl === '#') return false;
    if (pl === '+') continue;
    if (fl === '+' || pl !== fl) return false;
  }
}

/** True when some topic matches both filters. */
export function filtersIntersect(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  const dollarX = a.charCodeAt(0) === DOLLAR;
  const dollarY = b.charCodeAt(0) === DOLLAR;
  // [MQTT-4.7.2-1] a leading wildcard matches no `$` topic.
  if ((dollarX && (y[0] === '+' || y[0] === '#')) || (dollarY && (x[0] === '+' || x[0] === '#')))
    return false;
  for (let i = 0; ; i++) {
    const xl = x[i];
    const yl = y[i];
    if (xl === '#' || yl === '#') return true;
    if (xl === undefined || yl === undefined) return xl === yl;
    if (xl !== yl && xl !== '+' && yl !== '+') return false;
  }
}

/** A placeholder value that is one plain level: anything else cannot be put into a pattern safely. */
function safeLevel(value: string | undefined): value is string {
  return value !== undefined && value.length > 0 && !/[+#/]/.test(value) && !value.includes('\0');
}

/** The rules of one client, placeholders filled in, split by action. */
export class ClientRules implements TopicPermissions {
  private readonly pubAllow: string[] = [];
  private readonly pubDeny: string[] = [];
  private readonly subAllow: string[] = [];
  private readonly subDeny: string[] = [];
  /** A deny rule whose placeholder could not be filled safely: it denies everything (fail closed). */
  private pubDenyAll = false;
  private subDenyAll = false;
  private readonly pubCache = new Map<string, boolean>();
  private readonly subCache = new Map<string, boolean>();

  constructor(
    rules: readonly AclRule[],
    clientId: string,
    username: string | undefined,
    private readonly noMatch: boolean,
  ) {
    for (const rule of rules) {
      for (const pattern of rule.topics) {
        const topic = substitute(pattern, clientId, username);
        if (topic === null) continue; // %u without a user name: the rule is about no one here
        if (topic === false) {
          if (!rule.allow) {
            if (rule.publish) this.pubDenyAll = true;
            if (rule.subscribe) this.subDenyAll = true;
          }
          continue;
        }
        if (rule.publish) (rule.allow ? this.pubAllow : this.pubDeny).push(topic);
        if (rule.subscribe) (rule.allow ? this.subAllow : this.subDeny).push(topic);
      }
    }
  }

  publish(topic: string): boolean {
    let answer = this.pubCache.get(topic);
    if (answer === undefined) {
      answer = this.decidePublish(topic);
      remember(this.pubCache, topic, answer);
    }
    return answer;
  }

  /** `filter` without a `$share/group/` prefix. */
  subscribe(filter: string): boolean {
    let answer = this.subCache.get(filter);
    if (answer === undefined) {
      answer = this.decideSubscribe(filter);
      remember(this.subCache, filter, answer);
    }
    return answer;
  }

  private decidePublish(topic: string): boolean {
    if (this.pubDenyAll) return false;
    for (const p of this.pubDeny) if (topicMatches(p, topic)) return false;
    for (const p of this.pubAllow) if (topicMatches(p, topic)) return true;
    return this.noMatch;
  }

  private decideSubscribe(filter: string): boolean {
    if (this.subDenyAll) return false;
    for (const p of this.subDeny) if (filtersIntersect(p, filter)) return false;
    for (const p of this.subAllow) if (filterCovers(p, filter)) return true;
    return this.noMatch;
  }
}

/** Answers kept per client and action; a client that uses very many topics starts over. */
const MAX_CACHED_TOPICS = 1024;

function remember(cache: Map<string, boolean>, key: string, value: boolean): void {
  if (cache.size >= MAX_CACHED_TOPICS) cache.clear();
  cache.set(key, value);
}

/**
 * `pattern` with %u and %c filled in; null when it names the user and there is none; false when a
 * value holds `+`, `#` or `/` and would change the pattern's shape.
 */
function substitute(pattern: string, clientId: string, username: string | undefined): string | null | false {
  let out = pattern;
  if (out.includes('%u')) {
    if (username === undefined) return null;
    if (!safeLevel(username)) return false;
    out = out.replaceAll('%u', username);
  }
  if (out.includes('%c')) {
    if (!safeLevel(clientId)) return false;
    out = out.replaceAll('%c', clientId);
  }
  return out;
}

/** A token's or hook's own rule list as TopicPermissions: no match denies. */
export function permissionsFrom(rules: readonly AclRule[], clientId: string, username: string | undefined) {
  return new ClientRules(rules, clientId, username, false);
}

/** The filter an ACL judges: a shared subscription's filter without `$share/group/`. */
export function aclFilter(raw: string): string {
  return parseSubscription(raw)?.filter ?? raw;
}

/** Clients whose compiled rules are kept; past this the oldest are dropped (and rebuilt on use). */
const MAX_CLIENTS = 65_536;

/** The ACL of one document, with compiled rules and answers cached per client. */
export class Acl {
  private doc: AclDocument;
  private clients = new Map<string, ClientRules>();

  constructor(doc: AclDocument) {
    this.doc = doc;
  }

  /** Swaps in a new document (a reload); every cached answer goes. */
  replace(doc: AclDocument): void {
    this.doc = doc;
    this.clients = new Map();
  }

  get document(): AclDocument {
    return this.doc;
  }

  authorizePublish(clientId: string, username: string | undefined, topic: string): boolean {
    return this.rulesOf(clientId, username).publish(topic);
  }

  /** `filter` as sent: a `$share/group/` prefix is ignored. */
  authorizeSubscribe(clientId: string, username: string | undefined, filter: string): boolean {
    return this.rulesOf(clientId, username).subscribe(aclFilter(filter));
  }

  private rulesOf(clientId: string, username: string | undefined): ClientRules {
    // Client ids and user names cannot hold U+0000 [MQTT-1.5.4-2], so it separates them safely.
    const key = username === undefined ? clientId : `${clientId}\0${username}`;
    let rules = this.clients.get(key);
    if (rules === undefined) {
      const d = this.doc;
      const list = [
        ...d.defaults,
        ...(username === undefined ? d.anonymous : (d.users.get(username) ?? [])),
        ...(d.clients.get(clientId) ?? []),
      ];
      rules = new ClientRules(list, clientId, username, d.noMatch === 'allow');
      if (this.clients.size >= MAX_CLIENTS) {
        const oldest = this.clients.keys().next().value;
        if (oldest !== undefined) this.clients.delete(oldest);
      }
      this.clients.set(key, rules);
    }
    return rules;
  }
}
