/**
 * A single node's state on disk (`persistence.dir`): retained messages, persistent sessions (their
 * subscriptions, queues, in-flight ids, QoS 2 state), stored wills and the fencing epoch, in an
 * embedded LevelDB (classic-level: prebuilt binaries in the npm package, no download step).
 *
 * It is the MemoryHub's journal: the hub keeps the state in memory and reports each change; the
 * changes are written in group commits with fsync, and every acknowledgement that promises
 * durability (PUBACK/PUBREC to a publisher, SUBACK, PUBREL, CONNACK) waits for its commit. So what
 * the broker acknowledged survives a kill -9. Policies (`persistence.sync`):
 *   batch   one commit per event-loop turn, shared by every change of the turn (the default);
 *   always  one commit per change that is waited for (a commit in progress still delays the next).
 * Commits run one at a time, in order: a later write of a key never lands before an earlier one.
 *
 * Key layout (NUL separates parts: MQTT strings may not contain U+0000):
 *   v                  format version
 *   e                  highest fencing epoch given out
 *   o\0<client>        owner record: epoch, will                          (JSON)
 *   s\0<client>        session record: expiry, subscriptions, positions   (JSON)
 *   q\0<client>\0<seq> queued delivery                                    (record.ts bytes)
 *   d\0<client>\0<id>  dedupe id of a queued message, with when          (JSON number)
 *   r\0<topic>         retained message                                   (record.ts bytes)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { ErrorCode } from '../../errors.js';
import type { Delivery, Message, SubscriptionOptions } from '../../message.js';
import { type Instruments, noInstruments } from '../../observability/instruments.js';
import type { HubJournal, HubState, OwnerRecord, SessionRecord } from '../memory/journal.js';
import { decodeDelivery, decodeMessage, encodeDelivery, encodeMessage } from '../record.js';
import type { StoredWill } from '../types.js';

export type SyncPolicy = 'always' | 'batch';

const FORMAT = '1';
const SEP = '\u0000';

/** The data dir cannot be used: names the file and says how to recover (docs/configuration.md). */
export class DataDirError extends Error {
  readonly code = 'SHOAL_DATA_DIR' satisfies ErrorCode;
  constructor(
    readonly dir: string,
    /** The file at fault (the dir itself when no file can be named). */
    readonly file: string,
    detail: string,
  ) {
    super(
      `persistence.dir: cannot use ${file}: ${detail}. ` +
        `To recover what can be read: shoal repair-data ${dir} (docs/configuration.md "Persistence")`,
    );
    this.name = 'DataDirError';
  }
}

interface Group {
  ops: Map<string, Buffer | null>;
  done: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
}

function group(): Group {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A failed commit is reported to whoever waits; one nobody waits for must not crash the process.
  done.catch(() => undefined);
  return { ops: new Map(), done, resolve, reject };
}

export class DiskJournal implements HubJournal {
  /** Changes reported since the last commit began; sealed into `queue` when committed. */
  private open: Group | undefined;
  private readonly queue: Group[] = [];
  private writing: Group | undefined;
  private scheduled = false;
  private readonly sessions = new Map<string, SessionRecord | undefined>();
  private readonly owners = new Map<string, OwnerRecord | undefined>();
  /** The first write error: the journal refuses everything after it (the node must restart). */
  private failed: Error | undefined;
  private closed = false;
  /** Commits and the changes they carried, since open (metrics, the persistence benchmark). */
  readonly stats = { commits: 0, writes: 0 };

  private constructor(
    private readonly db: ClassicLevel<string, Buffer>,
    readonly dir: string,
    private readonly sync: SyncPolicy,
    private readonly instruments: Pick<Instruments, 'persistenceCommit'>,
  ) {}

  /**
   * Opens (or creates) the store in `dir` and loads it. Fails with a DataDirError naming the file
   * when the dir is in use by another process, corrupt, or of an unknown format.
   */
  static async open(
    dir: string,
    sync: SyncPolicy,
    instruments: Pick<Instruments, 'persistenceCommit'> = noInstruments,
  ): Promise<{ journal: DiskJournal; state: HubState }> {
    const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      throw openError(dir, err);
    }
    try {
      const state = await load(db, dir);
      const journal = new DiskJournal(db, dir, sync, instruments);
      return { journal, state };
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
  }

  /** Rebuilds what can be read of a damaged store in `dir` (LevelDB repair); the `shoal repair-data` command. */
  static async repair(dir: string): Promise<void> {
    await ClassicLevel.repair(dir);
  }

  session(clientId: string, record: SessionRecord | undefined): void {
    this.sessions.set(clientId, record);
    this.touch();
  }

  queued(clientId: string, seq: number, delivery: Delivery): void {
    this.put(queueKey(clientId, seq), encodeDelivery(delivery));
  }

  dequeued(clientId: string, seq: number): void {
    this.put(queueKey(clientId, seq), null);
  }

  dedupe(clientId: string, id: string, at: number | undefined): void {
    this.put(`d${SEP}${clientId}${SEP}${id}`, at === undefined ? null : Buffer.from(String(at)));
  }

  owner(clientId: string, record: OwnerRecord | undefined): void {
    this.owners.set(clientId, record);
    this.touch();
  }

  epoch(value: number): void {
    this.put('e', Buffer.from(String(value)));
  }

  retained(topic: string, message: Message | undefined): void {
    this.put(`r${SEP}${topic}`, message === undefined ? null : encodeMessage(message));
  }

  committed(): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const open = this.open;
    if (open !== undefined) {
      // always: this change gets its own commit; what comes next goes into the one after.
      if (this.sync === 'always') this.seal();
      return open.done;
    }
    const last = this.queue.at(-1) ?? this.writing;
    return last?.done ?? Promise.resolve();
  }

  /** Writes what is pending, then closes the store; a change reported later is refused, not written. */
  async close(): Promise<void> {
    this.seal();
    const last = this.queue.at(-1) ?? this.writing;
    await last?.done.catch(() => undefined);
    this.closed = true;
    await this.db.close();
  }

  private put(key: string, value: Buffer | null): void {
    this.touch().ops.set(key, value);
  }

  /** The open group, made (and its commit scheduled) on the first change after a commit began. */
  private touch(): Group {
    if (this.open === undefined) this.open = group();
    if (!this.scheduled) {
      this.scheduled = true;
      // batch: the rest of this turn's changes join; always: sealed earlier by committed().
      setImmediate(() => {
        this.scheduled = false;
        this.seal();
      });
    }
    return this.open;
  }

  /** Closes the open group (session and owner records encoded as they are now) and queues its commit. */
  private seal(): void {
    const g = this.open;
    if (g === undefined) return;
    this.open = undefined;
    for (const [id, record] of this.sessions)
      g.ops.set(`s${SEP}${id}`, record === undefined ? null : encodeSession(record));
    for (const [id, record] of this.owners)
      g.ops.set(`o${SEP}${id}`, record === undefined ? null : encodeOwner(record));
    this.sessions.clear();
    this.owners.clear();
    this.queue.push(g);
    this.pump();
  }

  private pump(): void {
    if (this.writing !== undefined) return;
    const g = this.queue.shift();
    if (g === undefined) return;
    if (this.failed !== undefined || this.closed) {
      g.reject(this.failed ?? new DataDirError(this.dir, this.dir, 'closed'));
      this.pump();
      return;
    }
    this.writing = g;
    const started = performance.now();
    const ops = [...g.ops].map(([key, value]) =>
      value === null ? { type: 'del' as const, key } : { type: 'put' as const, key, value },
    );
    this.db.batch(ops, { sync: true }).then(
      () => {
        this.stats.commits++;
        this.stats.writes += ops.length;
        this.instruments.persistenceCommit((performance.now() - started) / 1000, ops.length, false);
        this.writing = undefined;
        g.resolve();
        this.pump();
      },
      (err: Error) => {
        this.instruments.persistenceCommit(0, ops.length, true);
        this.failed = new DataDirError(this.dir, this.dir, `write failed: ${err.message}`);
        this.writing = undefined;
        g.reject(this.failed);
        this.pump();
      },
    );
  }
}

function queueKey(clientId: string, seq: number): string {
  // Fixed width, so a prefix scan returns a session's queue in order.
  return `q${SEP}${clientId}${SEP}${seq.toString(36).padStart(11, '0')}`;
}

// ---- records -------------------------------------------------------------------------------------

function encodeSession(r: SessionRecord): Buffer {
  return Buffer.from(
    JSON.stringify({
      x: r.expirySeconds,
      off: r.offlineAt,
      subs: [...r.subscriptions],
      t: r.taken,
      a: r.appended,
      n: r.nextPacketId,
      inf: [...r.inflight].map(([id, e]) => [id, e.seq, e.phase]),
      rel: [...r.awaitingRelease],
    }),
  );
}

function decodeSession(buf: Buffer): SessionRecord {
  const j = JSON.parse(buf.toString()) as {
    x: number;
    off?: number;
    subs: [string, SubscriptionOptions][];
    t: number;
    a: number;
    n: number;
    inf: [number, number, 'publish' | 'pubrel'][];
    rel: [number, string][];
  };
  return {
    expirySeconds: j.x,
    offlineAt: j.off,
    subscriptions: new Map(j.subs),
    taken: j.t,
    appended: j.a,
    nextPacketId: j.n,
    inflight: new Map(j.inf.map(([id, seq, phase]) => [id, { seq, phase }])),
    awaitingRelease: new Map(j.rel),
  };
}

function encodeOwner(r: OwnerRecord): Buffer {
  const will =
    r.will === undefined
      ? undefined
      : {
          m: encodeMessage(r.will.message).toString('base64'),
          d: r.will.delaySeconds,
          x: r.will.expirySeconds,
        };
  return Buffer.from(JSON.stringify({ e: r.epoch, w: will, rel: r.released }));
}

function decodeOwner(buf: Buffer): OwnerRecord {
  const j = JSON.parse(buf.toString()) as {
    e: number;
    w?: { m: string; d: number; x?: number };
    rel?: boolean;
  };
  const record: OwnerRecord = { node: '', epoch: j.e };
  if (j.rel === true) record.released = true;
  if (j.w !== undefined) {
    const will: StoredWill = { message: decodeMessage(Buffer.from(j.w.m, 'base64')), delaySeconds: j.w.d };
    if (j.w.x !== undefined) will.expirySeconds = j.w.x;
    record.will = will;
  }
  return record;
}

// ---- loading -------------------------------------------------------------------------------------

async function load(db: ClassicLevel<string, Buffer>, dir: string): Promise<HubState> {
  const state: HubState = { epoch: 0, owners: new Map(), sessions: new Map(), retained: [] };
  const records = new Map<string, SessionRecord>();
  const queues = new Map<string, { seq: number; delivery: Delivery }[]>();
  const dedupes = new Map<string, Map<string, number>>();
  let format: string | undefined;
  let empty = true;
  try {
    for await (const [key, value] of db.iterator()) {
      empty = false;
      try {
        const [kind, a = '', b = ''] = key.split(SEP);
        if (kind === 'v') format = value.toString();
        else if (kind === 'e') state.epoch = Number(value.toString());
        else if (kind === 'o') state.owners.set(a, decodeOwner(value));
        else if (kind === 's') records.set(a, decodeSession(value));
        else if (kind === 'q') {
          let q = queues.get(a);
          if (q === undefined) {
            q = [];
            queues.set(a, q);
          }
          q.push({ seq: Number.parseInt(b, 36), delivery: decodeDelivery(value) });
        } else if (kind === 'd') {
          let d = dedupes.get(a);
          if (d === undefined) {
            d = new Map();
            dedupes.set(a, d);
          }
          d.set(b, Number(value.toString()));
        } else if (kind === 'r') state.retained.push(decodeMessage(Buffer.from(value)));
        else throw new Error('unknown key');
      } catch (err) {
        throw new DataDirError(
          dir,
          dir,
          `unreadable record ${JSON.stringify(key)}: ${(err as Error).message}`,
        );
      }
    }
  } catch (err) {
    if (err instanceof DataDirError) throw err;
    throw openError(dir, err);
  }
  if (empty) await db.put('v', Buffer.from(FORMAT), { sync: true });
  else if (format !== FORMAT)
    throw new DataDirError(
      dir,
      dir,
      `unknown format ${JSON.stringify(format ?? null)} (this Shoal writes ${FORMAT})`,
    );
  for (const [id, record] of records) {
    const queue = queues.get(id) ?? [];
    // Queue entries without a record are ignored (a session's end removes both in one commit).
    state.sessions.set(id, { record, queue, dedupe: dedupes.get(id) ?? new Map() });
  }
  return state;
}

/**
 * Names the file at fault: the one LevelDB's message names (LOCK when another process holds the
 * dir), else for a damaged descriptor the MANIFEST that CURRENT points to, else the dir.
 */
function openError(dir: string, err: unknown): DataDirError {
  const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
  const named = cause.split(/[\s:]+/).find((word) => word.startsWith(`${dir}/`));
  const inUse = /lock/i.test(cause) && /unavailable|held|busy/i.test(cause);
  let file = named;
  if (file === undefined && /descriptor|manifest|CURRENT/i.test(cause)) {
    const current = join(dir, 'CURRENT');
    const manifest = existsSync(current) ? readFileSync(current, 'utf8').trim() : '';
    file = /^MANIFEST-\d+$/.test(manifest) && existsSync(join(dir, manifest)) ? join(dir, manifest) : current;
  }
  return new DataDirError(dir, file ?? dir, inUse ? `in use by another process (${cause})` : cause);
}
