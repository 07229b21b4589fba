/**
 * The HTTP authentication / authorization hook against a local HTTP server: allow, deny, ignore,
 * timeout, cached answers, ACL rules in a connect answer, and message order kept while an answer
 * is awaited.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanup, connect, nextMessage, online, startAuthServer } from './helpers.js';

interface Question {
  action: string;
  clientId: string;
  username: string | null;
  password?: string;
  topic?: string;
}

type Answer = { status: number; body?: unknown } | 'hang';

let service: http.Server;
let url: string;
let questions: Question[];
let answer: (q: Question) => Answer;
const hanging: http.ServerResponse[] = [];

beforeEach(async () => {
  questions = [];
  answer = () => ({ status: 200, body: { result: 'allow' } });
  service = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => {
      body += d.toString();
    });
    req.on('end', () => {
      const q = JSON.parse(body) as Question;
      questions.push(q);
      const a = answer(q);
      if (a === 'hang') {
        hanging.push(res);
        return;
      }
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body === undefined ? '' : JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(service.address() as AddressInfo).port}/mqtt/auth`;
});

afterEach(async () => {
  await cleanup();
  for (const res of hanging.splice(0)) res.destroy();
  service.closeAllConnections();
  await new Promise((resolve) => service.close(resolve));
});

const of = (action: string) => questions.filter((q) => q.action === action);

describe('HTTP auth hook', () => {
  it('asks about CONNECT with the credentials; 200 allow, 403 deny (0x86 / 4), ignore (0x86)', async () => {
    answer = (q) =>
      q.action !== 'connect' || q.password === 'good'
        ? { status: 200, body: { result: 'allow' } }
        : q.password === 'shrug'
          ? { status: 200, body: { result: 'ignore' } }
          : { status: 403 };
    const b = await startAuthServer({ http: { url }, required: true });
    await online(b.url, { protocolVersion: 5, clientId: 'c1', username: 'u', password: 'good' });
    expect(of('connect')[0]).toMatchObject({
      clientId: 'c1',
      username: 'u',
      password: 'good',
      transport: 'tcp',
    });
    expect((await connect(b.url, { protocolVersion: 5, username: 'u', password: 'bad' })).code).toBe(0x86);
    expect((await connect(b.url, { protocolVersion: 4, username: 'u', password: 'bad' })).code).toBe(4);
    expect((await connect(b.url, { protocolVersion: 5, username: 'u', password: 'shrug' })).code).toBe(0x86);
    expect(b.log.events('auth.login_failed').map((l) => l.reason)).toEqual([
      'http_denied',
      'http_denied',
      'http_ignored',
    ]);
  });

  it('no answer within timeoutMs: CONNACK 0x88 (v5) / 3 (v3.1.1)', async () => {
    answer = () => 'hang';
    const b = await startAuthServer({ http: { url, timeoutMs: 100 }, required: true });
    expect((await connect(b.url, { protocolVersion: 5, username: 'u', password: 'p' })).code).toBe(0x88);
    expect((await connect(b.url, { protocolVersion: 4, username: 'u', password: 'p' })).code).toBe(3);
  });

  it('caches CONNECT answers per credentials, and topic answers per client and topic', async () => {
    answer = (q) =>
      q.topic?.startsWith('secret/') ? { status: 200, body: { result: 'deny' } } : { status: 204 };
    const b = await startAuthServer({ http: { url }, required: true });
    const opts = { protocolVersion: 5 as const, clientId: 'c1', username: 'u', password: 'p' };
    const first = await online(b.url, opts);
    first.end(true);
    const c = await online(b.url, opts);
    expect(of('connect')).toHaveLength(1);
    await online(b.url, { ...opts, clientId: 'c2', password: 'other' });
    expect(of('connect')).toHaveLength(2);

    await c.publishAsync('open/t', 'x', { qos: 1 });
    await c.publishAsync('open/t', 'y', { qos: 1 });
    await expect(c.publishAsync('secret/t', 'z', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    await expect(c.publishAsync('secret/t', 'z', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    expect(of('publish').map((q) => q.topic)).toEqual(['open/t', 'secret/t']);

    const err = await c.subscribeAsync(['open/#', 'secret/#'], { qos: 1 }).then(
      () => undefined,
      (e: { packet: { granted: number[] } }) => e,
    );
    expect(err?.packet.granted).toEqual([1, 0x87]);
    expect(of('subscribe').map((q) => q.topic)).toEqual(['open/#', 'secret/#']);
  });

  it("a client's messages keep their order while an authorization answer is awaited", async () => {
    const b = await startAuthServer({ http: { url }, required: true });
    const sub = await online(b.url, { protocolVersion: 5, clientId: 's', username: 's', password: 'p' });
    await sub.subscribeAsync('o/#', { qos: 0 });
    const pub = await online(b.url, { protocolVersion: 5, clientId: 'p', username: 'p', password: 'p' });
    const received: string[] = [];
    const done = new Promise<void>((resolve) =>
      sub.on('message', (topic, payload) => {
        received.push(`${topic}=${payload}`);
        if (received.length === 4) resolve();
      }),
    );
    // o/2 is answered from the cache (synchronously) from now on; o/1 will need a request.
    await pub.publishAsync('o/2', 'warm', { qos: 1 });
    pub.publish('o/1', 'first', { qos: 0 });
    pub.publish('o/2', 'second', { qos: 0 });
    pub.publish('o/2', 'third', { qos: 0 });
    await done;
    // Without holding the client's input, o/2 (answered at once) would overtake o/1 (awaiting HTTP).
    expect(received).toEqual(['o/2=warm', 'o/1=first', 'o/2=second', 'o/2=third']);
    expect(of('publish').map((q) => q.topic)).toEqual(['o/2', 'o/1']);
  });

  it('ACL rules in the CONNECT answer narrow what the client may do; authorize: false asks nothing more', async () => {
    answer = () => ({
      status: 200,
      body: { result: 'allow', username: 'device-9', acl: [{ allow: 'both', topic: 'dev/%u/#' }] },
    });
    const b = await startAuthServer({ http: { url, authorize: false }, required: true });
    const c = await online(b.url, { protocolVersion: 5, clientId: 'c', username: 'x', password: 'p' });
    await c.subscribeAsync('dev/device-9/#', { qos: 1 });
    const got = nextMessage(c);
    await c.publishAsync('dev/device-9/t', 'ok', { qos: 1 });
    expect(await got).toEqual({ topic: 'dev/device-9/t', payload: 'ok' });
    await expect(c.publishAsync('dev/device-8/t', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    expect(of('publish')).toHaveLength(0);
  });
});
