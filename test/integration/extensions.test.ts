/**
 * Auto-subscribe and topic rewrite (#15) on a real single node with real clients: subscriptions a
 * client gets on connect (placeholders, retained messages, no SUBACK), and PUBLISH and SUBSCRIBE
 * topics rewritten by EMQX-style rules, authorized as the client sent them.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/auth/password-file.js';
import { connectMqtt, uniq } from '../helpers/cluster.js';
import { metricOf } from '../helpers/http-api.js';
import { freePort } from '../helpers/ports.js';
import { cleanup, startAuthServer, tempDir } from './auth/helpers.js';

afterEach(cleanup);

describe('auto-subscribe (#15)', () => {
  it("a client gets the rules' subscriptions on connect, %c and %u filled, retained messages included, no SUBACK", async () => {
    const httpPort = await freePort();
    const b = await startAuthServer(
      {},
      {
        httpPort,
        autoSubscribe: [
          { topic: 'devices/%c/cmd', qos: 1 },
          { topic: 'users/%u/inbox', qos: 0 },
        ],
      },
    );
    const id = uniq('dev');
    const { client: setter } = await connectMqtt(b.url);
    await setter.publishAsync(`devices/${id}/cmd`, 'retained-cmd', { qos: 1, retain: true });

    const dev = await connectMqtt(b.url, { clientId: id, username: 'alice', protocolVersion: 5 });
    await dev.inbox.payload('retained-cmd');
    await setter.publishAsync(`devices/${id}/cmd`, 'live-cmd', { qos: 1 });
    await setter.publishAsync('users/alice/inbox', 'for-alice', { qos: 0 });
    await dev.inbox.payload('live-cmd');
    await dev.inbox.payload('for-alice');
    expect(dev.inbox.messages.find((m) => m.payload === 'live-cmd')?.qos).toBe(1);
    // Made by the broker: the client was sent no SUBACK for them.
    expect(await metricOf(httpPort, 'shoal_packets_sent_total{type="suback"}')).toBe(0);
    // dev's two rules and the setter's %c rule (it has no user name).
    expect(await metricOf(httpPort, 'shoal_auto_subscriptions_total')).toBe(3);
    // A client without a user name gets the %c rule only.
    const anon = await connectMqtt(b.url, { clientId: uniq('anon') });
    await setter.publishAsync('users//inbox', 'nobody', { qos: 0 });
    await setter.publishAsync(`devices/${anon.client.options.clientId}/cmd`, 'anon-cmd', { qos: 0 });
    await anon.inbox.payload('anon-cmd');
    expect(anon.inbox.messages.map((m) => m.payload)).not.toContain('nobody');
    for (const c of [setter, dev.client, anon.client]) c.end(true);
  });
});

describe('topic rewrite (#15)', () => {
  it('PUBLISH and SUBSCRIBE topics are rewritten by the rules, authorized as sent', async () => {
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'passwd');
    const aclFile = path.join(dir, 'acl.yaml');
    await writeFile(passwordFile, `alice:${await hashPassword('pw')}\n`);
    // Alice may publish to old/# and subscribe to new/# and legacy/#, not to v2/#: the rewrite
    // happens after authorization (as EMQX does), so her legacy/# subscription works.
    await writeFile(
      aclFile,
      `users: { alice: [{ allow: publish, topic: 'old/#' }, { allow: subscribe, topic: 'new/#' }, { allow: subscribe, topic: 'legacy/#' }, { allow: publish, topic: 'v2/#' }] }`,
    );
    const b = await startAuthServer(
      { passwordFile, aclFile, required: true },
      {
        topicRewrite: [
          { action: 'publish', sourceTopic: 'old/#', regex: '^old/(.+)$', destTopic: 'new/$1' },
          { action: 'subscribe', sourceTopic: 'legacy/#', regex: '^legacy/(.+)$', destTopic: 'v2/$1' },
        ],
      },
    );
    const login = { username: 'alice', password: 'pw' };
    const sub = await connectMqtt(b.url, login);
    await sub.client.subscribeAsync('new/#', { qos: 1 });
    const pub = await connectMqtt(b.url, login);
    await pub.client.publishAsync('old/a/b', 'moved', { qos: 1 });
    await sub.inbox.payload('moved');
    expect(sub.inbox.messages.find((m) => m.payload === 'moved')?.topic).toBe('new/a/b');

    const legacy = await connectMqtt(b.url, login);
    await legacy.client.subscribeAsync('legacy/x', { qos: 1 }); // authorized as legacy/x, subscribed as v2/x
    await pub.client.publishAsync('v2/x', 'to-v2', { qos: 1 });
    await legacy.inbox.payload('to-v2');
    expect(legacy.inbox.messages.find((m) => m.payload === 'to-v2')?.topic).toBe('v2/x');
    // Unsubscribing from what it subscribed to undoes it (the same rule rewrites UNSUBSCRIBE).
    await legacy.client.unsubscribeAsync('legacy/x');
    await legacy.client.subscribeAsync('new/#', { qos: 1 });
    await pub.client.publishAsync('v2/x', 'after-unsubscribe', { qos: 1 });
    await pub.client.publishAsync('old/sync', 'sync', { qos: 1 });
    // In order on one connection: had it still been subscribed, 'after-unsubscribe' came first.
    await legacy.inbox.payload('sync');
    expect(legacy.inbox.messages.map((m) => m.payload)).not.toContain('after-unsubscribe');
    for (const c of [sub.client, pub.client, legacy.client]) c.end(true);
  });
});
