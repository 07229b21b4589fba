/**
 * TLS client certificates as identity: a CA, a server certificate and client certificates made with
 * openssl in a temp dir; the verified certificate's CN (or SAN) becomes the user name that ACL rules
 * (%u) see. Unverified certificates and missing ones identify nobody.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../helpers/ports.js';
import { cleanup, connect, nextMessage, startAuthServer, tempDir } from './helpers.js';

const run = promisify(execFile);
let dir: string;
const pem: Record<string, Buffer> = {};

async function openssl(...args: string[]) {
  await run('openssl', args, { cwd: dir });
}

/** A key and a certificate for `cn` signed by the test CA (or self-signed with `selfSigned`). */
async function issue(name: string, cn: string, opts: { san?: string; selfSigned?: boolean } = {}) {
  const ext = path.join(dir, `${name}.ext`);
  await writeFile(
    ext,
    opts.san === undefined ? 'basicConstraints=CA:FALSE\n' : `subjectAltName=${opts.san}\n`,
  );
  if (opts.selfSigned) {
    await openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${cn}`,
      '-days',
      '1',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    );
  } else {
    await openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    );
    await openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      ext,
      '-out',
      `${name}.crt`,
    );
  }
  pem[`${name}.key`] = await readFile(path.join(dir, `${name}.key`));
  pem[`${name}.crt`] = await readFile(path.join(dir, `${name}.crt`));
}

beforeAll(async () => {
  dir = await tempDir();
  await openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=Shoal Test CA',
    '-days',
    '1',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  );
  pem['ca.crt'] = await readFile(path.join(dir, 'ca.crt'));
  await issue('server', 'localhost', { san: 'DNS:localhost' });
  await issue('alice', 'alice', { san: 'DNS:alice-device.example, email:alice@example.com' });
  await issue('rogue', 'alice', { selfSigned: true });
  await writeFile(path.join(dir, 'acl.yaml'), `defaults: [{ allow: both, topic: 'certs/%u/#' }]\n`);
}, 60_000);
afterAll(cleanup);

async function tlsBroker(tlsIdentity: 'cn' | 'san') {
  const tlsPort = await freePort();
  const b = await startAuthServer(
    { tlsIdentity, required: true, aclFile: path.join(dir, 'acl.yaml') },
    {
      tls: {
        port: tlsPort,
        certFile: path.join(dir, 'server.crt'),
        keyFile: path.join(dir, 'server.key'),
        caFile: path.join(dir, 'ca.crt'),
        requestClientCert: true,
        // Let clients without a (valid) certificate reach MQTT, to see them refused there.
        rejectUnauthorized: false,
      },
    },
  );
  return { ...b, tlsUrl: `mqtts://localhost:${tlsPort}` };
}

const client = (name?: string) => ({
  ca: pem['ca.crt'],
  rejectUnauthorized: true,
  ...(name === undefined ? {} : { key: pem[`${name}.key`], cert: pem[`${name}.crt`] }),
});

describe('TLS client certificate identity', () => {
  it('cn: the verified certificate CN is the user name (over the CONNECT one) that ACL %u sees', async () => {
    const b = await tlsBroker('cn');
    const r = await connect(b.tlsUrl, {
      protocolVersion: 5,
      clientId: 'dev1',
      username: 'bob',
      ...client('alice'),
    });
    if (r.client === undefined) throw new Error(`CONNACK ${r.code}`);
    const c = r.client;
    await c.subscribeAsync('certs/alice/#', { qos: 1 });
    const got = nextMessage(c);
    await c.publishAsync('certs/alice/x', 'hello', { qos: 1 });
    expect(await got).toEqual({ topic: 'certs/alice/x', payload: 'hello' });
    await expect(c.publishAsync('certs/bob/x', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    expect(b.log.events('auth.login').at(-1)).toMatchObject({ username: 'alice', method: 'certificate' });
  });

  it('no certificate, or one the CA did not sign: no identity, so CONNACK 0x87 (auth required)', async () => {
    const b = await tlsBroker('cn');
    expect((await connect(b.tlsUrl, { protocolVersion: 5, ...client() })).code).toBe(0x87);
    expect((await connect(b.tlsUrl, { protocolVersion: 4, ...client('rogue') })).code).toBe(5);
  });

  it('san: the first DNS / email / URI SAN is the user name', async () => {
    const b = await tlsBroker('san');
    const r = await connect(b.tlsUrl, { protocolVersion: 4, clientId: 'dev2', ...client('alice') });
    if (r.client === undefined) throw new Error(`CONNACK ${r.code}`);
    await r.client.subscribeAsync('certs/alice-device.example/#', { qos: 1 });
    expect(b.log.events('auth.login').at(-1)).toMatchObject({ username: 'alice-device.example' });
  });
});
