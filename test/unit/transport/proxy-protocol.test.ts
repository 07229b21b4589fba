/**
 * The PROXY protocol parser (haproxy doc/proxy-protocol.txt): v1 text, v2 binary with IPv4, IPv6,
 * LOCAL, UNSPEC and UNIX families and TLVs; incomplete input asks for more bytes; malformed or
 * truncated input that can never become a header is refused as soon as its bytes show it.
 */
import { describe, expect, it } from 'vitest';
import {
  PROXY_V1_MAX_LENGTH,
  PROXY_V2_SIGNATURE,
  ProxyProtocolError,
  parseProxyHeader,
} from '../../../src/transport/proxy-protocol.js';
import { proxyV1, proxyV2, tlv } from '../../fixtures/proxy-protocol.js';

const MQTT = Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54]);

describe('PROXY protocol v1', () => {
  it('parses TCP4 with the client as source', () => {
    const bytes = proxyV1('203.0.113.7', '10.0.0.1', 56324, 1883);
    expect(parseProxyHeader(Buffer.concat([bytes, MQTT]))).toEqual({
      version: 1,
      command: 'proxy',
      source: { address: '203.0.113.7', port: 56324 },
      destination: { address: '10.0.0.1', port: 1883 },
      length: bytes.length,
    });
  });

  it('parses TCP6', () => {
    const bytes = proxyV1('2001:db8::7', '2001:db8::1', 1, 65535);
    expect(parseProxyHeader(bytes)).toMatchObject({
      source: { address: '2001:db8::7', port: 1 },
      destination: { address: '2001:db8::1', port: 65535 },
    });
  });

  it('UNKNOWN carries no address (the connection is the proxy speaking for itself)', () => {
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({
      version: 1,
      command: 'local',
      length: 15,
    });
    const long = Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n');
    expect(parseProxyHeader(long)).toMatchObject({ command: 'local', length: long.length });
  });

  it('asks for more bytes at every prefix of a valid header', () => {
    const bytes = proxyV1('203.0.113.7', '10.0.0.1', 56324, 1883);
    for (let n = 0; n < bytes.length; n++) expect(parseProxyHeader(bytes.subarray(0, n))).toBeUndefined();
    expect(parseProxyHeader(bytes)).toBeDefined();
  });

  it.each([
    ['lower-case keyword', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['unknown protocol', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['IPv6 address under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
    ['IPv4 address under TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['bad address', 'PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n'],
    ['missing field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'],
    ['double space', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['port above 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'],
    ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['a NUL byte', 'PROXY TCP4 1.2.3.4\0'],
  ])('refuses %s', (_name, text) => {
    expect(() => parseProxyHeader(Buffer.from(text, 'latin1'))).toThrow(ProxyProtocolError);
  });

  it('refuses a line without CRLF within 107 bytes', () => {
    const junk = Buffer.from(`PROXY ${'A'.repeat(PROXY_V1_MAX_LENGTH)}`);
    expect(() => parseProxyHeader(junk.subarray(0, PROXY_V1_MAX_LENGTH))).toThrow(/107/);
  });

  it('refuses a stream that starts like MQTT (no header at all)', () => {
    expect(() => parseProxyHeader(MQTT)).toThrow(ProxyProtocolError);
    expect(() => parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(ProxyProtocolError);
  });
});

describe('PROXY protocol v2', () => {
  it('parses PROXY over TCP/IPv4', () => {
    const bytes = proxyV2({ src: '203.0.113.7', dst: '10.0.0.1', srcPort: 40000, dstPort: 8883 });
    expect(bytes.length).toBe(28);
    expect(parseProxyHeader(Buffer.concat([bytes, MQTT]))).toEqual({
      version: 2,
      command: 'proxy',
      source: { address: '203.0.113.7', port: 40000 },
      destination: { address: '10.0.0.1', port: 8883 },
      length: 28,
    });
  });

  it('parses PROXY over TCP/IPv6, writing addresses as RFC 5952 text', () => {
    const cases: Array<[string, string]> = [
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['fe80:0:0:0:0:0:0:0', 'fe80::'],
      ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
      ['2001:0:1:0:0:0:0:1', '2001:0:1::1'],
      ['0:0:0:0:0:ffff:c000:207', '::ffff:192.0.2.7'],
    ];
    for (const [full, text] of cases) {
      const header = parseProxyHeader(proxyV2({ src: full, dst: '::1' }));
      expect(header?.source?.address, full).toBe(text);
    }
  });

  it('LOCAL has no address, even when an address block follows', () => {
    expect(parseProxyHeader(proxyV2({ command: 0, famProto: 0x00 }))).toEqual({
      version: 2,
      command: 'local',
      length: 16,
    });
    const withBlock = proxyV2({ command: 0 });
    expect(parseProxyHeader(withBlock)).toEqual({ version: 2, command: 'local', length: 28 });
  });

  it('ignores TLVs (ALPN, authority, unique id, SSL) and skips them with the header', () => {
    const tlvs = Buffer.concat([
      tlv(0x01, Buffer.from('mqtt')),
      tlv(0x02, Buffer.from('broker.example')),
      tlv(0x05, Buffer.alloc(32, 7)),
      tlv(0x20, Buffer.from([0x07, 0, 0, 0, 0])),
    ]);
    const bytes = proxyV2({ tlvs });
    const header = parseProxyHeader(Buffer.concat([bytes, MQTT]));
    expect(header).toMatchObject({ source: { address: '192.0.2.10' }, length: bytes.length });
  });

  it('UNSPEC, UNIX and UDP carry no client address we use', () => {
    for (const famProto of [0x00, 0x31, 0x12]) {
      const header = parseProxyHeader(proxyV2({ famProto }));
      expect(header).toMatchObject({ version: 2, command: 'proxy' });
      expect(header?.source).toBeUndefined();
    }
  });

  it('asks for more bytes at every prefix of a valid header (truncated input)', () => {
    const bytes = proxyV2({ src: '2001:db8::7', dst: '2001:db8::1', tlvs: tlv(0x04, Buffer.alloc(3)) });
    for (let n = 0; n < bytes.length; n++) expect(parseProxyHeader(bytes.subarray(0, n))).toBeUndefined();
    expect(parseProxyHeader(bytes)).toBeDefined();
  });

  it.each([
    ['version 1 in the version nibble', proxyV2({ version: 1 })],
    ['version 3', proxyV2({ version: 3 })],
    ['command 2', proxyV2({ command: 2 })],
    ['family 4', proxyV2({ famProto: 0x41 })],
    ['transport 3', proxyV2({ famProto: 0x13 })],
  ])('refuses %s', (_name, bytes) => {
    expect(() => parseProxyHeader(bytes)).toThrow(ProxyProtocolError);
  });

  it('refuses a length shorter than the address block of its family', () => {
    const bytes = proxyV2({ src: '192.0.2.1' });
    bytes.writeUInt16BE(8, 14);
    expect(() => parseProxyHeader(bytes)).toThrow(/shorter than its address block/);
  });

  it('refuses a broken signature as soon as it shows', () => {
    const bytes = Buffer.from(PROXY_V2_SIGNATURE);
    bytes[5] = 0x0a;
    expect(() => parseProxyHeader(bytes.subarray(0, 6))).toThrow(ProxyProtocolError);
    expect(parseProxyHeader(PROXY_V2_SIGNATURE.subarray(0, 6))).toBeUndefined();
  });
});
