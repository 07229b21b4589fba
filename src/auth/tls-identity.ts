/**
 * The identity in a verified TLS client certificate: its subject's Common Name, or its first
 * Subject Alternative Name (DNS, email or URI; IP addresses are not names). Only certificates that
 * verified against `tls.caFile` ever reach this point (Transport.peerCertificate).
 */
import type { PeerCertificate } from 'node:tls';

export type TlsIdentitySource = 'cn' | 'san';

/** The name the certificate gives its holder, or undefined when it has none of that kind. */
export function certificateIdentity(cert: PeerCertificate, source: TlsIdentitySource): string | undefined {
  if (source === 'cn') {
    const cn = cert.subject?.CN as string | string[] | undefined;
    // A subject with several CNs is ambiguous: the identity would depend on their order.
    if (Array.isArray(cn)) return undefined;
    return cn === undefined || cn.length === 0 ? undefined : cn;
  }
  for (const entry of splitSubjectAltName(cert.subjectaltname ?? '')) {
    const colon = entry.indexOf(':');
    const kind = entry.slice(0, colon);
    const value = entry.slice(colon + 1);
    if ((kind === 'DNS' || kind === 'email' || kind === 'URI') && value.length > 0) return value;
  }
  return undefined;
}

/**
 * Node joins SAN entries with ", " and quotes an entry (JSON style) when its value holds a comma
 * or a quote: `DNS:a.example, email:"x,y"@example`.
 */
export function splitSubjectAltName(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // A quoted value: find the closing quote that is not escaped.
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = '';
      }
      next = text.indexOf(', ', j);
    } else {
      next = text.indexOf(', ', colon);
      value = text.slice(colon + 1, next < 0 ? undefined : next);
    }
    out.push(`${kind}:${value}`);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}
