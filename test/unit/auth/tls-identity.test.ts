import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { certificateIdentity, splitSubjectAltName } from '../../../src/auth/tls-identity.js';

const cert = (subject: Record<string, unknown>, subjectaltname?: string) =>
  ({ subject, subjectaltname }) as unknown as PeerCertificate;

describe('TLS client certificate identity', () => {
  it('cn: the subject Common Name', () => {
    expect(certificateIdentity(cert({ CN: 'alice', O: 'Acme' }), 'cn')).toBe('alice');
    expect(certificateIdentity(cert({ O: 'Acme' }), 'cn')).toBeUndefined();
    // Two CNs: ambiguous, no identity.
    expect(certificateIdentity(cert({ CN: ['a', 'b'] }), 'cn')).toBeUndefined();
  });

  it('san: the first DNS, email or URI name, skipping IP addresses', () => {
    expect(
      certificateIdentity(cert({ CN: 'x' }, 'IP Address:10.0.0.1, DNS:dev1.example, email:a@b'), 'san'),
    ).toBe('dev1.example');
    expect(certificateIdentity(cert({ CN: 'x' }, 'email:ops@example.com'), 'san')).toBe('ops@example.com');
    expect(certificateIdentity(cert({ CN: 'x' }), 'san')).toBeUndefined();
  });

  it('splits Node SAN strings, quoted values included', () => {
    expect(splitSubjectAltName('DNS:a.example, URI:spiffe://t/ns/x, email:"a,b@example"')).toEqual([
      'DNS:a.example',
      'URI:spiffe://t/ns/x',
      'email:a,b@example',
    ]);
    expect(splitSubjectAltName('')).toEqual([]);
  });
});
