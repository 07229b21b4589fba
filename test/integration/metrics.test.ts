/**
 * The counters operators of other brokers rely on (#14), through a real server, real clients and
 * /metrics: CONNACKs by code, disconnects by reason, authorization answers, packets by type,
 * sessions created / resumed / discarded, in-flight and queued totals, and the node id on shoal_info.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/auth/password-file.js';
import { scrapeMetrics } from '../helpers/http-api.js';
import { freePort } from '../helpers/ports.js';
import { cleanup, connect, online, startAuthServer, tempDir } from './auth/helpers.js';

afterEach(cleanup);

describe('operator metrics', () => {
  it('(#14) CONNACKs by code, disconnects by reason, ACL answers, packets by type, session lifecycle, node id', async () => {
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'passwd');
    const aclFile = path.join(dir, 'acl.yaml');
    await writeFile(passwordFile, `alice:${await hashPassword('pw')}\n`);
    await writeFile(aclFile, `users: { alice: [{ allow: both, topic: 'a/#' }] }`);
    const httpPort = await freePort();
    const b = await startAuthServer(
      { passwordFile, aclFile, required: true },
      { httpPort, nodeId: 'metrics-node-1' },
    );
    const login = { username: 'alice', password: 'pw' };

    // Refused: a v5 and a 3.1.1 client with a wrong password.
    expect((await connect(b.url, { protocolVersion: 5, username: 'alice', password: 'no' })).code).toBe(0x86);
    expect((await connect(b.url, { protocolVersion: 4, username: 'alice', password: 'no' })).code).toBe(4);

    // A persistent session: created, then resumed, then discarded by a Clean Start.
    const session = {
      ...login,
      protocolVersion: 5 as const,
      clientId: 'p1',
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    };
    const first = await online(b.url, session);
    await first.subscribeAsync('a/t', { qos: 1 }); // allowed
    await expect(first.subscribeAsync('b/t', { qos: 1 })).rejects.toThrow(/Not authorized/); // denied
    await first.publishAsync('a/t', 'ok', { qos: 1 }); // allowed
    await expect(first.publishAsync('b/t', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 }); // denied
    const closed = (reason: string) => b.log.next('client.disconnected', (l) => l.reason === reason, from);
    let from = b.log.lines.length;
    await first.endAsync(); // DISCONNECT: client_disconnect
    await closed('client_disconnect');
    const second = await online(b.url, session); // resumed
    // The socket goes without a DISCONNECT: connection_lost.
    from = b.log.lines.length;
    (second as unknown as { stream: { destroy(): void } }).stream.destroy();
    await closed('connection_lost');
    const third = await online(b.url, { ...session, clean: true }); // discards the stored session
    from = b.log.lines.length;
    await third.endAsync();
    await closed('client_disconnect');

    const series = await scrapeMetrics(httpPort);
    const metric = (name: string) => series[name] ?? 0;
    expect(metric('shoal_connacks_total{protocol="5",code="0x86"}')).toBe(1);
    expect(metric('shoal_connacks_total{protocol="4",code="0x04"}')).toBe(1);
    expect(metric('shoal_connacks_total{protocol="5",code="0x00"}')).toBe(3);
    expect(metric('shoal_disconnects_total{reason="client_disconnect"}')).toBe(2);
    expect(metric('shoal_disconnects_total{reason="connection_lost"}')).toBe(1);
    expect(metric('shoal_authorizations_total{action="publish",result="allow"}')).toBe(1);
    expect(metric('shoal_authorizations_total{action="publish",result="deny"}')).toBe(1);
    expect(metric('shoal_authorizations_total{action="subscribe",result="allow"}')).toBe(1);
    expect(metric('shoal_authorizations_total{action="subscribe",result="deny"}')).toBe(1);
    expect(metric('shoal_packets_received_total{type="connect"}')).toBe(5);
    expect(metric('shoal_packets_received_total{type="publish"}')).toBe(2);
    expect(metric('shoal_packets_received_total{type="disconnect"}')).toBe(2);
    expect(metric('shoal_packets_sent_total{type="connack"}')).toBe(5);
    expect(metric('shoal_packets_sent_total{type="suback"}')).toBe(2);
    expect(metric('shoal_packets_sent_total{type="puback"}')).toBe(2);
    expect(metric('shoal_packets_sent_total{type="publish"}')).toBe(1); // a/t back to its subscriber
    expect(metric('shoal_sessions_created_total')).toBe(2); // p1, then p1 again after the Clean Start
    expect(metric('shoal_sessions_resumed_total')).toBe(1);
    expect(metric('shoal_sessions_discarded_total')).toBe(1);
    expect(metric('shoal_inflight_messages')).toBe(0);
    expect(metric('shoal_queued_messages')).toBe(0);
    expect(metric('shoal_info{version="0.1.0",mode="single",node_id="metrics-node-1"}')).toBe(1);
  });
});
