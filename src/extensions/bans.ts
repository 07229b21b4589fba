/**
 * Banned clients and flapping detection (#15), as EMQX's emqx_banned and emqx_flapping do them: a
 * ban by client id, user name or address (an IP or a CIDR range), with a reason and an expiry,
 * refuses a CONNECT with CONNACK 0x8A Banned (3.x: 5 Not authorized) and disconnects the matching
 * clients connected now (DISCONNECT 0x98 Administrative action) on every node at once: the bans are
 * in the cluster's BanStore (Redis, or a single node's memory), each node holding a copy. A client id
 * that connects more than `maxConnects` times in `windowSeconds` (counted cluster-wide) is banned for
 * `banSeconds`. The check on CONNECT reads the copy: no Redis round trip.
 */
import type { Ban, BanStore } from '../backend/types.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import { AddressList } from '../transport/address.js';

export interface FlappingOptions {
  readonly enabled: boolean;
  readonly maxConnects: number;
  readonly windowSeconds: number;
  readonly banSeconds: number;
}

/** The bans in force, indexed for the CONNECT check. */
class BanList {
  readonly clientIds = new Map<string, Ban>();
  readonly usernames = new Map<string, Ban>();
  readonly addresses: { ban: Ban; list: AddressList }[] = [];

  constructor(bans: readonly Ban[]) {
    for (const b of bans) {
      if (b.kind === 'clientId') this.clientIds.set(b.value, b);
      else if (b.kind === 'username') this.usernames.set(b.value, b);
      else this.addresses.push({ ban: b, list: new AddressList([b.value]) });
    }
  }
}

export interface BanningOptions {
  store: BanStore;
  clock: Clock;
  logger: Logger;
  flapping: FlappingOptions;
  /** The bans changed: disconnect the connected clients `isBanned` now refuses. */
  enforce(): void;
}

export class Banning {
  private list = new BanList([]);
  /** Flapping bans made by this node since start (shoal_flapping_bans_total). */
  flappingBans = 0;
  /** CONNECTs refused for a ban (shoal_connects_banned_total). */
  refused = 0;

  constructor(private readonly o: BanningOptions) {
    o.store.onChange(() => {
      this.refresh();
      o.enforce();
    });
  }

  /** The bans in force (the admin API's list). */
  get bans(): readonly Ban[] {
    return this.o.store.current();
  }

  /** Reads the store's copy again (it changed, or a ban may have expired). */
  refresh(): void {
    this.list = new BanList(this.o.store.current());
  }

  /** The ban that refuses a client with these names and this address, or undefined. */
  banOf(clientId: string, username: string | undefined, address: string | undefined): Ban | undefined {
    const l = this.list;
    const ban =
      l.clientIds.get(clientId) ??
      (username === undefined ? undefined : l.usernames.get(username)) ??
      (address === undefined || l.addresses.length === 0
        ? undefined
        : l.addresses.find((a) => a.list.has(address))?.ban);
    if (ban === undefined) return undefined;
    if (ban.until !== null && ban.until <= this.o.clock.now()) {
      this.refresh(); // expired meanwhile
      return undefined;
    }
    return ban;
  }

  /** A CONNECT of `clientId` was accepted: counted for flapping detection (off the connect's path). */
  connected(clientId: string): void {
    const f = this.o.flapping;
    if (!f.enabled) return;
    this.o.store.countConnect(clientId, f.windowSeconds * 1000).then(
      (n) => {
        if (n !== f.maxConnects + 1) return; // once per window, on the first connect over the limit
        this.flappingBans++;
        this.o.logger.warn({
          event: 'client.flapping_banned',
          clientId,
          connects: n,
          windowSeconds: f.windowSeconds,
        });
        return this.add({
          kind: 'clientId',
          value: clientId,
          reason: `flapping: more than ${f.maxConnects} connects in ${f.windowSeconds} s`,
          seconds: f.banSeconds,
          by: 'flapping',
        });
      },
      (err: Error) => this.o.logger.warn({ event: 'flapping.count_failed', clientId, err: err.message }),
    );
  }

  /** Adds a ban (every node sees it and disconnects who it matches). */
  async add(b: {
    kind: Ban['kind'];
    value: string;
    reason?: string;
    seconds?: number;
    by: string;
  }): Promise<Ban> {
    const now = this.o.clock.now();
    const ban: Ban = {
      kind: b.kind,
      value: b.value,
      reason: b.reason ?? '',
      until: b.seconds === undefined ? null : now + b.seconds * 1000,
      by: b.by,
      at: now,
    };
    await this.o.store.add(ban);
    return ban;
  }

  remove(kind: Ban['kind'], value: string): Promise<boolean> {
    return this.o.store.remove(kind, value);
  }
}
