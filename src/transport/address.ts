/**
 * Lists of trusted addresses (single IPs and CIDR ranges, IPv4 and IPv6) and the client address
 * behind trusted HTTP proxies (X-Forwarded-For). IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) match
 * IPv4 entries.
 */
import net from 'node:net';

/** The problem with one address-list entry, or undefined when it is an IP or a CIDR range. */
export function addressEntryProblem(entry: string): string | undefined {
  const slash = entry.indexOf('/');
  const ip = slash < 0 ? entry : entry.slice(0, slash);
  const family = net.isIP(ip);
  if (family === 0) return `${JSON.stringify(entry)} is not an IP address or CIDR range`;
  if (slash < 0) return undefined;
  const bits = entry.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max)
    return `${JSON.stringify(entry)} has a prefix length outside 0..${max}`;
  return undefined;
}

export class AddressList {
  private readonly list = new net.BlockList();
  readonly size: number;

  /** Throws on an entry that is not an IP address or CIDR range (the config schema checks first). */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const problem = addressEntryProblem(entry);
      if (problem !== undefined) throw new Error(problem);
      const slash = entry.indexOf('/');
      const ip = slash < 0 ? entry : entry.slice(0, slash);
      const type = net.isIPv4(ip) ? 'ipv4' : 'ipv6';
      if (slash < 0) this.list.addAddress(ip, type);
      else this.list.addSubnet(ip, Number(entry.slice(slash + 1)), type);
    }
    this.size = entries.length;
  }

  has(address: string | undefined): boolean {
    if (address === undefined) return false;
    const family = net.isIP(address);
    if (family === 0) return false;
    return this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * The client behind a chain of proxies: walks X-Forwarded-For from the right (the hop nearest to us)
 * while each address is a trusted proxy, and returns the first one that is not. A peer that is not
 * trusted is the client itself, whatever the header says (a client may send any header). A malformed
 * entry stops the walk at the last address vouched for.
 */
export function forwardedClient(
  peer: string,
  header: string | string[] | undefined,
  trusted: AddressList,
): string {
  if (header === undefined || !trusted.has(peer)) return peer;
  const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trusted.has(client)) break;
    const hop = hops[i].trim();
    if (net.isIP(hop) === 0) break;
    client = hop;
  }
  return client;
}
