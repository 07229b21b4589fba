/**
 * Certificate rotation without a restart (#14): a renewal written into the mounted Secret (the
 * kubelet's swap, as cert-manager's renewals reach a pod) or followed by SIGHUP reaches new TLS
 * and WSS handshakes; connections already open stay and keep working; material that does not load
 * is refused and the old certificate kept; /metrics says when the served certificate expires.
 * Before, the certificate was read once at start. Waits are on log events, never on time.
 */

import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { metricOf } from '../../helpers/http-api.js';
import { freePort } from '../../helpers/ports.js';
import { SecretVolume } from '../../helpers/secret-volume.js';
import { makeTestCert, type TestCert } from '../../helpers/tls-cert.js';
import { cleanup, startAuthServer, tempDir } from '../auth/helpers.js';

let certs: TestCert[];
beforeAll(async () => {
  // Three certificates that expire on different days, so each is told apart by /metrics too.
  certs = await Promise.all([makeTestCert(10), makeTestCert(20), makeTestCert(30)]);
});
afterAll(async () => Promise.all(certs.map((c) => c.remove())));
afterEach(cleanup);

const fingerprint = (c: TestCert) => new X509Certificate(c.cert).fingerprint256;
const notAfter = (c: TestCert) => Date.parse(new X509Certificate(c.cert).validTo) / 1000;

/** The fingerprint of the certificate a new handshake on `port` gets. */
async function served(port: number): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  const fp = socket.getPeerCertificate().fingerprint256;
  socket.destroy();
  return fp;
}

async function tlsServer(certFile: string, keyFile: string, watchFiles: boolean) {
  const [tlsPort, wssPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const b = await startAuthServer(
    {},
    { httpPort, tls: { port: tlsPort, wssPort, certFile, keyFile, watchFiles } },
  );
  return { ...b, tlsPort, wssPort, httpPort };
}

describe('TLS certificate rotation', () => {
  it('(#14) a renewed certificate swapped into the mounted Secret reaches new TLS and WSS handshakes; an open connection stays', async () => {
    const [first, second] = certs;
    const volume = new SecretVolume(await tempDir());
    await volume.write({ 'tls.crt': first.cert.toString(), 'tls.key': first.key.toString() });
    const b = await tlsServer(path.join(volume.dir, 'tls.crt'), path.join(volume.dir, 'tls.key'), true);
    expect(await served(b.tlsPort)).toBe(fingerprint(first));
    expect(await metricOf(b.httpPort, 'shoal_tls_certificate_expiry_timestamp_seconds')).toBe(
      notAfter(first),
    );
    const open = await mqtt.connectAsync(`mqtts://127.0.0.1:${b.tlsPort}`, {
      rejectUnauthorized: false,
      reconnectPeriod: 0,
    });
    try {
      await open.subscribeAsync('rot/t', { qos: 1 });

      const from = b.log.lines.length;
      await volume.write({ 'tls.crt': second.cert.toString(), 'tls.key': second.key.toString() });
      await b.log.next('tls.reloaded', () => true, from);
      expect(await served(b.tlsPort)).toBe(fingerprint(second));
      expect(await served(b.wssPort)).toBe(fingerprint(second));
      expect(await metricOf(b.httpPort, 'shoal_tls_certificate_expiry_timestamp_seconds')).toBe(
        notAfter(second),
      );

      // The connection made before the rotation is still there and works.
      expect(open.connected).toBe(true);
      const got = new Promise<string>((resolve) =>
        open.once('message', (_t, payload) => resolve(String(payload))),
      );
      await open.publishAsync('rot/t', 'after', { qos: 1 });
      expect(await got).toBe('after');
    } finally {
      await open.endAsync();
    }
  });

  it('(#14) SIGHUP (reload) reads the files again with tls.watchFiles off; a key that does not match is refused and the old certificate kept', async () => {
    const [first, second, third] = certs;
    const dir = await tempDir();
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    await writeFile(certFile, first.cert);
    await writeFile(keyFile, first.key);
    const b = await tlsServer(certFile, keyFile, false);

    // A renewal half written: the new certificate with the old key.
    await writeFile(certFile, second.cert);
    let from = b.log.lines.length;
    b.server.reload();
    const failed = await b.log.next('tls.reload_failed', () => true, from);
    expect(failed.key).toBe('tls');
    expect(String(failed.reason)).toMatch(/not usable/);
    expect(await served(b.tlsPort)).toBe(fingerprint(first));
    expect(await metricOf(b.httpPort, 'shoal_tls_reloads_total{result="failed"}')).toBe(1);

    await writeFile(certFile, third.cert);
    await writeFile(keyFile, third.key);
    from = b.log.lines.length;
    b.server.reload();
    await b.log.next('tls.reloaded', () => true, from);
    expect(await served(b.tlsPort)).toBe(fingerprint(third));
    expect(await served(b.wssPort)).toBe(fingerprint(third));
    expect(await metricOf(b.httpPort, 'shoal_tls_reloads_total{result="ok"}')).toBe(1);
  });
});
