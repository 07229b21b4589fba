/** Trusted address lists (IPs and CIDR ranges) and the client behind X-Forwarded-For. */
import { describe, expect, it } from 'vitest';
import { AddressList, addressEntryProblem, forwardedClient } from '../../../src/transport/address.js';

describe('AddressList', () => {
  it('matches single addresses and CIDR ranges of both families', () => {
    const list = new AddressList(['127.0.0.1', '10.0.0.0/8', 'fd00::/8', '::1']);
    expect(list.has('127.0.0.1')).toBe(true);
    expect(list.has('127.0.0.2')).toBe(false);
    expect(list.has('10.255.1.2')).toBe(true);
    expect(list.has('11.0.0.1')).toBe(false);
    expect(list.has('fd12::5')).toBe(true);
    expect(list.has('fe80::1')).toBe(false);
    expect(list.has('::1')).toBe(true);
  });

  it('matches IPv4-mapped IPv6 peers against IPv4 entries', () => {
    const list = new AddressList(['10.0.0.0/8']);
    expect(list.has('::ffff:10.1.2.3')).toBe(true);
    expect(list.has('::ffff:11.1.2.3')).toBe(false);
  });

  it('matches nothing for junk or a missing address', () => {
    const list = new AddressList(['0.0.0.0/0']);
    expect(list.has('not an address')).toBe(false);
    expect(list.has(undefined)).toBe(false);
  });

  it.each(['10.0.0.0/33', 'fd00::/129', 'example.com', '10.0.0.0/', '10.0.0.0/x', ''])(
    'refuses the entry %j',
    (entry) => {
      expect(addressEntryProblem(entry)).toBeDefined();
      expect(() => new AddressList([entry])).toThrow();
    },
  );
});

describe('forwardedClient', () => {
  const trusted = new AddressList(['10.0.0.0/8']);

  it('believes X-Forwarded-For only from a trusted proxy', () => {
    expect(forwardedClient('10.0.0.5', '203.0.113.9', trusted)).toBe('203.0.113.9');
    expect(forwardedClient('198.51.100.2', '203.0.113.9', trusted)).toBe('198.51.100.2');
    expect(forwardedClient('10.0.0.5', undefined, trusted)).toBe('10.0.0.5');
  });

  it('takes the rightmost address that is not a trusted proxy (a client may prepend anything)', () => {
    expect(forwardedClient('10.0.0.5', '1.1.1.1, 203.0.113.9, 10.0.0.7', trusted)).toBe('203.0.113.9');
    expect(forwardedClient('10.0.0.5', ['1.1.1.1', '203.0.113.9'], trusted)).toBe('203.0.113.9');
  });

  it('all hops trusted: the leftmost', () => {
    expect(forwardedClient('10.0.0.5', '10.0.0.9, 10.0.0.7', trusted)).toBe('10.0.0.9');
  });

  it('stops at a malformed entry with the last address vouched for', () => {
    expect(forwardedClient('10.0.0.5', '203.0.113.9, junk', trusted)).toBe('10.0.0.5');
    expect(forwardedClient('10.0.0.5', 'junk, 10.0.0.7', trusted)).toBe('10.0.0.7');
  });
});
