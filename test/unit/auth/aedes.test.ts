import { describe, expect, it } from 'vitest';
import { fromAedesHooks } from '../../../src/auth/aedes.js';

const info = {
  clientId: 'c1',
  username: 'u',
  password: Buffer.from('p'),
  remoteAddress: 'x',
  transport: 'tcp',
};

describe('Aedes-style hooks', () => {
  it('authenticate: success, failure, and an error returnCode chooses the CONNACK code', async () => {
    const hooks = (answer: [(Error & { returnCode?: number }) | null, boolean?]) =>
      fromAedesHooks({
        authenticate: (client, username, password, done) => {
          expect(client).toEqual({ id: 'c1', username: 'u' });
          expect([username, password?.toString()]).toEqual(['u', 'p']);
          done(answer[0], answer[1]);
        },
      });
    expect(await hooks([null, true]).authenticate!(info)).toBe(0);
    expect(await hooks([null, false]).authenticate!(info)).toBe(0x86);
    expect(await hooks([Object.assign(new Error('x'), { returnCode: 5 })]).authenticate!(info)).toBe(0x87);
    expect(await hooks([Object.assign(new Error('x'), { returnCode: 2 })]).authenticate!(info)).toBe(0x85);
    expect(await hooks([new Error('x')]).authenticate!(info)).toBe(0x87);
  });

  it('authorizePublish and authorizeSubscribe: an error or a null subscription denies', async () => {
    const h = fromAedesHooks({
      authorizePublish: (client, packet, done) =>
        done(packet.topic.startsWith(`${client.id}/`) ? null : new Error('no')),
      authorizeSubscribe: (_client, sub, done) => done(null, sub.topic === '#' ? null : sub),
    });
    expect(await h.authorizePublish!('c1', 'u', 'c1/t')).toBe(true);
    expect(await h.authorizePublish!('c1', 'u', 'c2/t')).toBe(false);
    expect(await h.authorizeSubscribe!('c1', 'u', 'a/b')).toBe(true);
    expect(await h.authorizeSubscribe!('c1', 'u', '#')).toBe(false);
    expect(h.authenticate).toBeUndefined();
  });
});
