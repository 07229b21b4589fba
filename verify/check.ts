/**
 * The checker: pure functions from a history (history.ts) to the violations found, by kind. It knows
 * MQTT's and Shoal's rules, not which of them a fault class promises (promises.ts decides that).
 */
import type { CloseHow, HistoryEvent, ReceiveEvent } from './history.js';

export const VIOLATION_KINDS = [
  'lost-persistent',
  'lost-clean',
  'lost-shared',
  'lost-slow',
  'qos2-duplicate',
  'qos1-duplicate-without-dup',
  'order',
  'order-shared',
  'double-owner',
  'will-missing',
  'will-duplicate',
  'will-unexpected',
  'retained-stale',
  'session-lost',
  'late',
] as const;
export type ViolationKind = (typeof VIOLATION_KINDS)[number];

export interface CheckOptions {
  /** A clean subscriber is owed a message only if it stayed connected this long after the ack. */
  graceMs: number;
  /** Receipts on an older connection this soon after a newer one's CONNACK are still in flight. */
  doubleOwnerSlackMs: number;
  /** A first delivery later than this after the ack counts as `late` (a stall). */
  lateMs: number;
}

/**
 * A connection that closed this long after a node kill began, or KILL_RACE_AFTER_MS before it, may
 * have sent its DISCONNECT to the dying node (its socket closes with the node's).
 */
const KILL_RACE_MS = 100;
const KILL_RACE_AFTER_MS = 50;

export const DEFAULT_CHECK_OPTIONS: CheckOptions = { graceMs: 2_000, doubleOwnerSlackMs: 100, lateMs: 5_000 };

export interface Stats {
  connects: number;
  connectFailures: number;
  publishes: [number, number, number];
  acked: number;
  refused: number;
  receives: number;
  faults: number;
}

export interface CheckResult {
  counts: Record<ViolationKind, number>;
  /** Up to `EXAMPLES` descriptions per kind. */
  examples: Record<ViolationKind, string[]>;
  stats: Stats;
}

const EXAMPLES = 5;

interface Conn {
  id: string;
  client: string;
  persistent: boolean;
  expiryMs: number;
  slow: boolean;
  will?: { id: string; topic: string };
  connectT: number;
  connackT?: number;
  sessionPresent?: boolean;
  closeT?: number;
  closeHow?: CloseHow;
  /** Session key: the connection itself when clean; client + session number when persistent. */
  session?: string;
}

interface Message {
  id: string;
  topic: string;
  qos: number;
  retain: boolean;
  sendT: number;
  ackT?: number;
  ok: boolean;
}

/** A subscription of one session to one filter, from SUBACK to the session's (or connection's) end. */
interface Window {
  session: string;
  conn: string;
  filter: string;
  /** `$share/<group>/` stripped; the group, if shared. */
  group?: string;
  persistent: boolean;
  /** Granted QoS (the SUBACK code). */
  granted: number;
  start: number;
  end: number;
  slow: boolean;
}

/** MQTT topic filter matching ('+' one level, '#' the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The sequence number in a `publisher:seq` id. */
function seqOf(id: string): number {
  return Number(id.slice(id.lastIndexOf(':') + 1));
}

export function check(events: readonly HistoryEvent[], options: Partial<CheckOptions> = {}): CheckResult {
  const opts = { ...DEFAULT_CHECK_OPTIONS, ...options };
  const counts = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>;
  const examples = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, []])) as unknown as Record<
    ViolationKind,
    string[]
  >;
  const report = (kind: ViolationKind, what: string) => {
    counts[kind]++;
    if (examples[kind].length < EXAMPLES) examples[kind].push(what);
  };
  const stats: Stats = {
    connects: 0,
    connectFailures: 0,
    publishes: [0, 0, 0],
    acked: 0,
    refused: 0,
    receives: 0,
    faults: 0,
  };

  const conns = new Map<string, Conn>();
  const messages = new Map<string, Message>();
  const receipts: ReceiveEvent[] = [];
  /** Start times of the node kills (fault class kill: kill -9 of a Shoal node). */
  const nodeKills: number[] = [];
  const subacks: { conn: string; t: number; filters: string[]; codes: number[] }[] = [];
  const subscribeT = new Map<string, number>();
  const endOfHistory = events.length === 0 ? 0 : events[events.length - 1].t;

  for (const e of events) {
    switch (e.type) {
      case 'connect':
        stats.connects++;
        conns.set(e.conn, {
          id: e.conn,
          client: e.client,
          persistent: e.persistent,
          expiryMs: e.sessionExpirySeconds * 1000,
          slow: e.slow === true,
          will: e.will,
          connectT: e.t,
        });
        break;
      case 'connack': {
        const c = conns.get(e.conn);
        if (c !== undefined) {
          c.connackT = e.t;
          c.sessionPresent = e.sessionPresent;
        }
        break;
      }
      case 'connect-failed':
        stats.connectFailures++;
        break;
      case 'close': {
        const c = conns.get(e.conn);
        if (c !== undefined && c.closeT === undefined) {
          c.closeT = e.t;
          c.closeHow = e.how;
        }
        break;
      }
      case 'subscribe':
        subscribeT.set(`${e.conn} ${e.filters.join(' ')}`, e.t);
        break;
      case 'suback':
        subacks.push({ conn: e.conn, t: e.t, filters: e.filters, codes: e.codes });
        break;
      case 'publish':
        stats.publishes[e.qos]++;
        messages.set(e.id, { id: e.id, topic: e.topic, qos: e.qos, retain: e.retain, sendT: e.t, ok: false });
        break;
      case 'ack': {
        const m = messages.get(e.id);
        if (m !== undefined && m.ackT === undefined) {
          m.ackT = e.t;
          m.ok = e.ok;
          if (e.ok) stats.acked++;
          else stats.refused++;
        }
        break;
      }
      case 'receive':
        stats.receives++;
        receipts.push(e);
        break;
      case 'fault':
        if (e.phase === 'start') {
          stats.faults++;
          if (e.fault === 'kill') nodeKills.push(e.t);
        }
        break;
    }
  }

  // Sessions: a clean connection is its own session; a persistent client's session continues
  // until a CONNACK says Session Present 0 (or it expired).
  const byClient = new Map<string, Conn[]>();
  for (const c of conns.values()) {
    const list = byClient.get(c.client) ?? [];
    list.push(c);
    byClient.set(c.client, list);
  }
  const sessionEnd = new Map<string, number>();
  for (const [client, list] of byClient) {
    list.sort((a, b) => a.connectT - b.connectT);
    let n = 0;
    let lastClose: number | undefined;
    let hadSession = false;
    for (const c of list) {
      if (c.connackT === undefined) continue;
      if (!c.persistent) {
        c.session = c.id;
        sessionEnd.set(c.id, c.closeT ?? Number.POSITIVE_INFINITY);
        continue;
      }
      const expired = lastClose !== undefined && c.connectT - lastClose > c.expiryMs;
      if (!c.sessionPresent || expired || !hadSession) {
        if (hadSession && !c.sessionPresent && !expired)
          report('session-lost', `${client}: ${c.id} got Session Present 0 at ${c.connackT}`);
        if (hadSession)
          sessionEnd.set(
            `${client}#${n}`,
            lastClose !== undefined && expired ? lastClose + c.expiryMs : c.connackT,
          );
        n++;
      }
      hadSession = true;
      c.session = `${client}#${n}`;
      sessionEnd.set(c.session, Number.POSITIVE_INFINITY);
      lastClose = c.closeT;
    }
    const last = list[list.length - 1];
    if (last.persistent && last.session !== undefined && last.closeT !== undefined) {
      if (endOfHistory - last.closeT > last.expiryMs)
        sessionEnd.set(last.session, last.closeT + last.expiryMs);
    }
  }

  const windows: Window[] = [];
  for (const s of subacks) {
    const c = conns.get(s.conn);
    if (c?.session === undefined) continue;
    s.filters.forEach((filter, i) => {
      if ((s.codes[i] ?? 0x80) >= 0x80) return;
      const shared = /^\$share\/([^/]+)\/(.*)$/.exec(filter);
      windows.push({
        session: c.session as string,
        conn: c.id,
        filter: shared === null ? filter : shared[2],
        group: shared === null ? undefined : shared[1],
        persistent: c.persistent,
        granted: s.codes[i],
        start: s.t,
        end: sessionEnd.get(c.session as string) ?? Number.POSITIVE_INFINITY,
        slow: c.slow,
      });
    });
  }

  // Receipts per session, in arrival order.
  const bySession = new Map<string, ReceiveEvent[]>();
  for (const r of receipts) {
    const s = conns.get(r.conn)?.session;
    if (s === undefined) continue;
    const list = bySession.get(s) ?? [];
    list.push(r);
    bySession.set(s, list);
  }
  const firstReceipt = (session: string, id: string) => bySession.get(session)?.find((r) => r.id === id);

  const entitled = (w: Window, m: Message) =>
    m.ackT !== undefined &&
    w.granted >= 1 &&
    m.sendT >= w.start &&
    (w.persistent ? m.sendT < w.end : m.ackT + opts.graceMs <= w.end);

  // Loss and lateness, per subscription window.
  for (const m of messages.values()) {
    if (m.qos === 0 || !m.ok || m.ackT === undefined) continue;
    const groups = new Map<string, { owed: boolean; got: boolean }>();
    const judged = new Set<string>();
    for (const w of windows) {
      if (!topicMatches(w.filter, m.topic) || !entitled(w, m)) continue;
      // A session subscribed twice (a re-subscribe) is owed the message once.
      if (judged.has(`${w.session} ${w.group}`)) continue;
      judged.add(`${w.session} ${w.group}`);
      const got = firstReceipt(w.session, m.id);
      if (w.group !== undefined) {
        const key = `${w.group} ${w.filter}`;
        const g = groups.get(key) ?? { owed: false, got: false };
        g.owed = true;
        groups.set(key, g);
        continue;
      }
      if (got === undefined) {
        // The subscriber that stopped reading is judged apart: what passes its queue limit is dropped.
        report(
          w.slow && !w.persistent ? 'lost-slow' : w.persistent ? 'lost-persistent' : 'lost-clean',
          `${m.id} (${m.topic} qos ${m.qos}) to ${w.session}`,
        );
      } else if (!w.slow && got.t - m.ackT > opts.lateMs) {
        report('late', `${m.id} to ${w.session} ${got.t - m.ackT} ms after its ack`);
      }
    }
    for (const [key, g] of groups) {
      const [group, filter] = key.split(' ');
      g.got = windows.some(
        (w) => w.group === group && w.filter === filter && firstReceipt(w.session, m.id) !== undefined,
      );
      if (!g.got) report('lost-shared', `${m.id} (${m.topic}) to no member of $share/${group}/${filter}`);
    }
  }

  // Duplicates and order, per session. A shared member's order is its own kind: a share handed
  // over from a dead member's node, or re-routed, arrives after later ones.
  const members = new Set(windows.filter((w) => w.group !== undefined).map((w) => w.session));
  for (const [session, list] of bySession) {
    const seen = new Map<string, number>();
    const maxSeq = new Map<string, { seq: number; id: string }>();
    for (const r of list) {
      // A retained copy sent on SUBSCRIBE is a delivery of its own beside a live copy.
      const copy = `${r.id} ${r.retain}`;
      const before = seen.get(copy) ?? 0;
      seen.set(copy, before + 1);
      if (before > 0) {
        // A will's copies are judged by the will rule below (will-duplicate), once.
        if (r.id.startsWith('will:')) continue;
        if (r.qos === 2) report('qos2-duplicate', `${r.id} to ${session} (copy ${before + 1})`);
        else if (r.qos === 1 && !r.dup) report('qos1-duplicate-without-dup', `${r.id} to ${session}`);
        continue;
      }
      if (r.dup || r.retain) continue;
      // A publish the broker refused (an error reason code, e.g. 0x80 when replication could not
      // be confirmed) is indeterminate, as a Jepsen "info" operation: it may still be delivered,
      // and its place in the order was never promised.
      if (messages.get(r.id)?.ok === false && messages.get(r.id)?.ackT !== undefined) continue;
      const key = `${r.topic} ${r.id.slice(0, r.id.lastIndexOf(':'))}`;
      const seq = seqOf(r.id);
      const max = maxSeq.get(key);
      if (max !== undefined && seq < max.seq)
        report(members.has(session) ? 'order-shared' : 'order', `${session} got ${r.id} after ${max.id}`);
      else maxSeq.set(key, { seq, id: r.id });
    }
  }

  // One owner per client id: an older connection receives nothing after a newer one's CONNACK.
  for (const [client, list] of byClient) {
    const acked = list.filter((c) => c.connackT !== undefined);
    for (const c of acked) {
      const newer = acked
        .filter((o) => o !== c && (o.connackT as number) > (c.connackT as number))
        .map((o) => o.connackT as number);
      if (newer.length === 0) continue;
      const since = Math.min(...newer) + opts.doubleOwnerSlackMs;
      const late = receipts.find((r) => r.conn === c.id && r.t > since);
      if (late !== undefined)
        report('double-owner', `${client}: ${c.id} got ${late.id} after a newer CONNACK`);
    }
  }

  // A DISCONNECT sent as a node is killed -9 may never be read by it (the client cannot tell): the
  // end is abnormal for the broker and its will is published (CLUSTER.md 4). A connection that
  // closed "with DISCONNECT" within KILL_RACE_MS of a node kill is not held to "no will".
  const diedWith = (c: Conn): boolean =>
    c.closeT !== undefined &&
    nodeKills.some(
      (k) => k - KILL_RACE_AFTER_MS <= (c.closeT as number) && (c.closeT as number) - k <= KILL_RACE_MS,
    );

  // Wills: exactly once after an abnormal end, never after DISCONNECT, at most once otherwise.
  for (const c of conns.values()) {
    if (c.will === undefined || c.connackT === undefined) continue;
    const will = c.will;
    const watched = windows.filter((w) => topicMatches(w.filter, will.topic) && w.start <= c.connectT);
    if (watched.length === 0) continue;
    let fired = 0;
    for (const w of watched) {
      const n = (bySession.get(w.session) ?? []).filter((r) => r.id === will.id).length;
      fired = Math.max(fired, n);
    }
    const what = `${c.client} ${c.id} (${c.closeHow ?? 'open'})`;
    if (fired > 1) report('will-duplicate', `${what}: ${fired} copies`);
    if (c.closeHow === 'destroyed' && fired === 0) report('will-missing', what);
    if ((c.closeHow === 'disconnect' || c.closeHow === undefined) && fired > 0 && !diedWith(c))
      report('will-unexpected', what);
  }

  // Retained read-after-ack: a subscribe to a topic after a retained PUBACK gets it or a newer one.
  const retained = [...messages.values()].filter((m) => m.retain && m.ok && m.ackT !== undefined);
  for (const s of subacks) {
    const c = conns.get(s.conn);
    if (c === undefined) continue;
    s.filters.forEach((filter, i) => {
      if ((s.codes[i] ?? 0x80) >= 0x80 || /[+#]/.test(filter)) return;
      const askedAt = subscribeT.get(`${s.conn} ${s.filters.join(' ')}`) ?? s.t;
      const before = retained.filter((m) => m.topic === filter && (m.ackT as number) < askedAt);
      if (before.length === 0) return;
      const latest = before.reduce((a, b) => (b.sendT > a.sendT ? b : a));
      const got = receipts.filter((r) => r.conn === s.conn && r.retain && r.topic === filter);
      const fresh = got.some((r) => (messages.get(r.id)?.sendT ?? -1) >= latest.sendT);
      if (fresh) return;
      if (got.length === 0 && c.closeHow === 'lost') return; // ended before it could be judged
      report(
        'retained-stale',
        `${c.id} subscribed to ${filter} after ${latest.id}'s ack, got ${got.map((r) => r.id).join(',') || 'nothing'}`,
      );
    });
  }

  return { counts, examples, stats };
}
