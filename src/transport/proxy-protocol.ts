/**
 * The PROXY protocol header (HAProxy's spec, versions 1 and 2), parsed from the first bytes a load
 * balancer sends on a new connection. Pure: bytes in, a header (or "need more bytes", or an error)
 * out; no I/O. `proxied.ts` reads it off sockets.
 *
 * v1 is one text line: `PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>\r\n` or `PROXY UNKNOWN...\r\n`,
 * at most 107 bytes. v2 is binary: a 12-byte signature, version/command, family/transport, a 16-bit
 * length, the addresses, then TLVs (ignored here). LOCAL (v2) and UNKNOWN (v1) headers, and v2
 * headers for families other than TCP over IPv4/IPv6, carry no client address: the connection's own
 * peer is the address then (health checks from the balancer itself).
 */
import net from 'node:net';
import type { ErrorCode } from '../errors.js';

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** 'local': the balancer speaks for itself (v2 LOCAL, v1 UNKNOWN); no addresses. */
  command: 'proxy' | 'local';
  /** The original client; undefined when the header carries none (LOCAL, UNKNOWN, UNSPEC, UNIX, UDP). */
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** Bytes the header occupies at the start of the stream; MQTT bytes follow. */
  length: number;
}

export class ProxyProtocolError extends Error {
  override readonly name = 'ProxyProtocolError';
  readonly code = 'PROXY_HEADER_INVALID' satisfies ErrorCode;
}

/** v2 signature: \r\n\r\n\0\r\nQUIT\n */
export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The longest v1 line, CRLF included (spec 2.1). */
export const PROXY_V1_MAX_LENGTH = 107;
const V2_FIXED = 16;
/** The largest v2 header: 16 fixed bytes + a 16-bit length. */
export const PROXY_V2_MAX_LENGTH = V2_FIXED + 0xffff;

/**
 * Parses a PROXY header at the start of `buf`. Returns undefined while more bytes are needed, the
 * header once complete; throws ProxyProtocolError when the bytes are not (or cannot become) a valid
 * header, so a stream without one is refused as soon as its first bytes show it.
 */
export function parseProxyHeader(buf: Buffer): ProxyHeader | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === V1_PREFIX[0]) {
    if (!startsWith(buf, V1_PREFIX)) throw new ProxyProtocolError('not a PROXY protocol header');
    return parseV1(buf);
  }
  if (buf[0] === PROXY_V2_SIGNATURE[0]) {
    if (!startsWith(buf, PROXY_V2_SIGNATURE)) throw new ProxyProtocolError('not a PROXY protocol header');
    return parseV2(buf);
  }
  throw new ProxyProtocolError('not a PROXY protocol header');
}

/** Whether `buf` begins with `prefix`, or with part of it when shorter. */
function startsWith(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.compare(prefix, 0, n, 0, n) === 0;
}

function parseV1(buf: Buffer): ProxyHeader | undefined {
  if (buf.length < V1_PREFIX.length) return undefined;
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0 || end + 2 > PROXY_V1_MAX_LENGTH) {
    if (buf.length >= PROXY_V1_MAX_LENGTH)
      throw new ProxyProtocolError('v1 header without CRLF in 107 bytes');
    // A CR or LF alone, or a non-printable byte, can never become a valid line.
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if ((c < 0x20 || c > 0x7e) && !(c === 0x0d && i === buf.length - 1))
        throw new ProxyProtocolError('v1 header holds a byte outside printable ASCII');
    }
    return undefined;
  }
  const line = buf.toString('latin1', V1_PREFIX.length, end);
  const length = end + 2;
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) return { version: 1, command: 'local', length };
  const parts = line.split(' ');
  if (parts.length !== 5) throw new ProxyProtocolError('v1 header must have 5 fields after PROXY');
  const [family, src, dst, srcPort, dstPort] = parts;
  const check = family === 'TCP4' ? net.isIPv4 : family === 'TCP6' ? net.isIPv6 : undefined;
  if (check === undefined) throw new ProxyProtocolError(`v1 header has unknown protocol ${family}`);
  if (!check(src) || !check(dst)) throw new ProxyProtocolError(`v1 header has an invalid ${family} address`);
  return {
    version: 1,
    command: 'proxy',
    source: { address: src, port: v1Port(srcPort) },
    destination: { address: dst, port: v1Port(dstPort) },
    length,
  };
}

function v1Port(text: string): number {
  // Decimal 0..65535 without leading zeros (spec 2.1).
  if (!/^(0|[1-9]\d{0,4})$/.test(text) || Number(text) > 65535)
    throw new ProxyProtocolError('v1 header has an invalid port');
  return Number(text);
}

function parseV2(buf: Buffer): ProxyHeader | undefined {
  if (buf.length < V2_FIXED) return undefined;
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) throw new ProxyProtocolError(`v2 header has version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new ProxyProtocolError(`v2 header has unknown command ${cmd}`);
  const famProto = buf[13];
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > 3 || transport > 2) throw new ProxyProtocolError('v2 header has unknown family or transport');
  const body = buf.readUInt16BE(14);
  const length = V2_FIXED + body;
  if (buf.length < length) return undefined;
  // LOCAL: the balancer's own connection (a health check); the address block, if any, is ignored.
  if (cmd === 0) return { version: 2, command: 'local', length };
  const needed = family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  if (body < needed) throw new ProxyProtocolError('v2 header is shorter than its address block');
  // Only TCP over IPv4/IPv6 names a client we can use; other families keep the socket's peer.
  if (transport !== 1 || (family !== 1 && family !== 2)) return { version: 2, command: 'proxy', length };
  const at = V2_FIXED;
  if (family === 1) {
    return {
      version: 2,
      command: 'proxy',
      source: { address: ipv4(buf, at), port: buf.readUInt16BE(at + 8) },
      destination: { address: ipv4(buf, at + 4), port: buf.readUInt16BE(at + 10) },
      length,
    };
  }
  return {
    version: 2,
    command: 'proxy',
    source: { address: ipv6(buf, at), port: buf.readUInt16BE(at + 32) },
    destination: { address: ipv6(buf, at + 16), port: buf.readUInt16BE(at + 34) },
    length,
  };
}

function ipv4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

/** RFC 5952 text: lower-case hex, the longest run of two or more zero groups as `::`. */
function ipv6(buf: Buffer, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(at + 2 * i));
  // IPv4-mapped (::ffff:a.b.c.d), written the way Node writes such socket addresses.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${ipv4(buf, at + 12)}`;
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}
