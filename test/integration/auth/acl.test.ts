/**
 * ACL file authorization over real sockets with mqtt.js: SUBACK 0x87 (5.0) / 0x80 (3.1.1) for a
 * denied filter, PUBACK / PUBREC 0x87 for a denied PUBLISH at 5.0, a denied PUBLISH at 3.1.1 dropped
 * silently (or the connection closed with v3DeniedPublish: disconnect), %u and %c per client.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../src/auth/password-file.js';
import { cleanup, nextMessage, online, startAuthServer, tempDir } from './helpers.js';

let files: { passwordFile: string; aclFile: string };
beforeEach(async () => {
  const dir = await tempDir();
  files = { passwordFile: path.join(dir, 'users.passwd'), aclFile: path.join(dir, 'acl.yaml') };
  await writeFile(
    files.passwordFile,
    `alice:${await hashPassword('a-pw')}\nwatcher:${await hashPassword('w-pw')}\n`,
  );
  await writeFile(
    files.aclFile,
    `
users:
  alice:
    - { allow: both, topic: 'home/%u/#' }
    - { deny: publish, topic: 'home/%u/locked' }
    - { allow: publish, topic: 'clients/%c/status' }
  watcher:
    - { allow: subscribe, topic: 'home/#' }
    - { allow: subscribe, topic: 'clients/#' }
`,
  );
});
afterEach(cleanup);

const as = (user: 'alice' | 'watcher', protocolVersion: 4 | 5, clientId: string): mqtt.IClientOptions => ({
  protocolVersion,
  clientId,
  username: user,
  password: user === 'alice' ? 'a-pw' : 'w-pw',
});

describe('ACL authorization', () => {
  it.each([5, 4] as const)(
    '[MQTT-3.8.4-7] [MQTT-3.9.3-2] level %i: denied filters get their failure code, allowed ones their QoS',
    async (v) => {
      const b = await startAuthServer({ ...files, required: true });
      const alice = await online(b.url, as('alice', v, `alice-${v}`));
      // mqtt.js rejects a SUBACK holding a failure; the packet carries every code, in order.
      const err = await alice
        .subscribeAsync({ 'home/alice/#': { qos: 1 }, 'home/bob/#': { qos: 1 }, 'home/#': { qos: 0 } })
        .then(
          () => undefined,
          (e: { packet?: { granted?: number[]; reasonCodes?: number[] } }) => e,
        );
      const failure = v === 5 ? 0x87 : 0x80;
      expect(err?.packet?.granted ?? err?.packet?.reasonCodes).toEqual([1, failure, failure]);
      // The allowed filter took effect.
      const got = nextMessage(alice);
      await alice.publishAsync('home/alice/x', 'mine', { qos: 1 });
      expect(await got).toEqual({ topic: 'home/alice/x', payload: 'mine' });
    },
  );

  it('(MQTT 5 3.4.2.1) a denied QoS 1 PUBLISH gets PUBACK 0x87, a QoS 2 one PUBREC 0x87; nothing is routed', async () => {
    const b = await startAuthServer({ ...files, required: true });
    const watcher = await online(b.url, as('watcher', 5, 'w5'));
    await watcher.subscribeAsync('home/#', { qos: 1 });
    const alice = await online(b.url, as('alice', 5, 'a5'));
    const got = nextMessage(watcher);
    await expect(alice.publishAsync('home/alice/locked', 'no', { qos: 1 })).rejects.toMatchObject({
      code: 0x87,
    });
    await expect(alice.publishAsync('home/bob/x', 'no', { qos: 2 })).rejects.toMatchObject({ code: 0x87 });
    await alice.publishAsync('home/alice/lamp', 'marker', { qos: 1 });
    expect(await got).toEqual({ topic: 'home/alice/lamp', payload: 'marker' });
    expect(b.log.events('auth.publish_denied').map((l) => l.topic)).toEqual([
      'home/alice/locked',
      'home/bob/x',
    ]);
  });

  it('[MQTT-3.3.5-2] 3.1.1: a denied PUBLISH is acknowledged as usual and dropped; %c names the client', async () => {
    const b = await startAuthServer({ ...files, required: true });
    const watcher = await online(b.url, as('watcher', 4, 'w4'));
    await watcher.subscribeAsync(['home/#', 'clients/#'], { qos: 1 });
    const alice = await online(b.url, as('alice', 4, 'a4'));
    const got = nextMessage(watcher);
    await alice.publishAsync('home/alice/locked', 'no', { qos: 1 });
    await alice.publishAsync('home/alice/locked', 'no', { qos: 2 });
    await alice.publishAsync('clients/someone-else/status', 'no', { qos: 0 });
    await alice.publishAsync('clients/a4/status', 'marker', { qos: 1 });
    expect(await got).toEqual({ topic: 'clients/a4/status', payload: 'marker' });
    expect(alice.connected).toBe(true);
  });

  it('[MQTT-3.3.5-2] 3.1.1 with v3DeniedPublish: disconnect: a denied PUBLISH closes the connection', async () => {
    const b = await startAuthServer({ ...files, required: true, v3DeniedPublish: 'disconnect' });
    const alice = await online(b.url, as('alice', 4, 'a4d'));
    const closed = new Promise<void>((resolve) => alice.once('close', () => resolve()));
    alice.publish('home/alice/locked', 'no', { qos: 0 });
    await closed;
    // MQTT 5 clients still get a reason code instead.
    const alice5 = await online(b.url, as('alice', 5, 'a5d'));
    await expect(alice5.publishAsync('home/alice/locked', 'no', { qos: 1 })).rejects.toMatchObject({
      code: 0x87,
    });
    expect(alice5.connected).toBe(true);
  });
});
