/**
 * Reloading the password and ACL files while clients stay connected: on change (file watch) in
 * process, and on SIGHUP to the real CLI. Every wait is on a log event, never on time.
 */
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../src/auth/password-file.js';
import { freePort } from '../../helpers/ports.js';
import { killAllTracked, spawnTracked } from '../../helpers/processes.js';
import { SecretVolume } from '../../helpers/secret-volume.js';
import { cleanup, connect, nextMessage, online, startAuthServer, tempDir } from './helpers.js';

afterEach(async () => {
  await killAllTracked();
  await cleanup();
});

/** Replaces a file the way editors and `shoal passwd` do: write a temporary file, rename it over. */
async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

const ACL_OPEN = `users: { alice: [{ allow: both, topic: 'a/#' }] }`;
const ACL_NARROW = `users: { alice: [{ allow: both, topic: 'a/#' }, { deny: publish, topic: 'a/closed' }] }`;

describe('auth file reload', () => {
  it('a changed password file and ACL apply to new logins and checks; open connections stay', async () => {
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'users.passwd');
    const aclFile = path.join(dir, 'acl.yaml');
    await writeFile(passwordFile, `alice:${await hashPassword('old-pw')}\n`);
    await writeFile(aclFile, ACL_OPEN);
    const b = await startAuthServer({ passwordFile, aclFile, required: true, watchFiles: true });

    const alice = await online(b.url, {
      protocolVersion: 5,
      username: 'alice',
      password: 'old-pw',
      clientId: 'a1',
    });
    await alice.subscribeAsync('a/#', { qos: 1 });
    await alice.publishAsync('a/closed', 'before', { qos: 1 });

    let from = b.log.lines.length;
    await replaceFile(passwordFile, `alice:${await hashPassword('new-pw')}\n`);
    await b.log.next('auth.reloaded', (l) => l.key === 'auth.passwordFile', from);
    from = b.log.lines.length;
    await replaceFile(aclFile, ACL_NARROW);
    await b.log.next('auth.reloaded', (l) => l.key === 'auth.aclFile', from);

    // The connection made with the old password is still there and works.
    expect(alice.connected).toBe(true);
    const got = nextMessage(alice);
    await alice.publishAsync('a/open', 'after', { qos: 1 });
    expect(await got).toEqual({ topic: 'a/open', payload: 'after' });
    // The new ACL applies to it at once (cached answers were dropped).
    await expect(alice.publishAsync('a/closed', 'after', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    // New logins use the new password.
    expect((await connect(b.url, { protocolVersion: 5, username: 'alice', password: 'old-pw' })).code).toBe(
      0x86,
    );
    await online(b.url, { protocolVersion: 5, username: 'alice', password: 'new-pw', clientId: 'a2' });
  });

  it('(#14) a password file mounted from a Kubernetes Secret is reloaded when the kubelet swaps the volume', async () => {
    const volume = new SecretVolume(await tempDir());
    await volume.write({ passwords: `alice:${await hashPassword('old-pw')}\n` });
    const b = await startAuthServer({
      passwordFile: path.join(volume.dir, 'passwords'),
      required: true,
      watchFiles: true,
    });
    await online(b.url, { protocolVersion: 5, username: 'alice', password: 'old-pw', clientId: 'k1' });
    const from = b.log.lines.length;
    await volume.write({ passwords: `alice:${await hashPassword('rotated')}\n` });
    await b.log.next('auth.reloaded', (l) => l.key === 'auth.passwordFile', from);
    expect((await connect(b.url, { protocolVersion: 5, username: 'alice', password: 'old-pw' })).code).toBe(
      0x86,
    );
    await online(b.url, { protocolVersion: 5, username: 'alice', password: 'rotated', clientId: 'k2' });
  });

  it('a broken file is logged and the previous content kept', async () => {
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'users.passwd');
    await writeFile(passwordFile, `alice:${await hashPassword('pw')}\n`);
    const b = await startAuthServer({ passwordFile, required: true, watchFiles: true });
    const from = b.log.lines.length;
    await replaceFile(passwordFile, 'alice:not-a-hash\n');
    const failed = await b.log.next('auth.reload_failed', () => true, from);
    expect(failed.reason).toMatch(/line 1: not a \$scrypt\$ hash/);
    await online(b.url, { protocolVersion: 5, username: 'alice', password: 'pw' });
  });

  it('SIGHUP makes the running CLI reread its files; connected clients stay', async () => {
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'users.passwd');
    const configFile = path.join(dir, 'shoal.json');
    await writeFile(passwordFile, `alice:${await hashPassword('old-pw')}\n`);
    const port = await freePort();
    await writeFile(
      configFile,
      JSON.stringify({
        host: '127.0.0.1',
        port,
        wsPort: 0,
        httpPort: 0,
        auth: { passwordFile, required: true, watchFiles: false },
      }),
    );
    const node = await spawnTracked(
      process.execPath,
      ['--import', 'tsx', 'test/helpers/shoal-main.ts', 'start', '--config', configFile],
      { cwd: new URL('../../../', import.meta.url).pathname, name: 'shoal' },
    );
    await node.waitForOutput(/"event":"server\.ready"/, 30_000);
    const url = `mqtt://127.0.0.1:${port}`;
    const alice = await online(url, {
      protocolVersion: 4,
      username: 'alice',
      password: 'old-pw',
      clientId: 'a1',
    });
    await alice.subscribeAsync('t', { qos: 1 });

    await writeFile(passwordFile, `alice:${await hashPassword('new-pw')}\n`);
    node.kill('SIGHUP');
    await node.waitForOutput(/"event":"auth\.reloaded"/);
    expect(node.running).toBe(true);

    const got = nextMessage(alice);
    await alice.publishAsync('t', 'still here', { qos: 1 });
    expect(await got).toEqual({ topic: 't', payload: 'still here' });
    expect((await connect(url, { protocolVersion: 4, username: 'alice', password: 'old-pw' })).code).toBe(4);
    await online(url, { protocolVersion: 4, username: 'alice', password: 'new-pw', clientId: 'a2' });
    alice.end(true);
    expect(await node.terminate()).toMatchObject({ code: 0 });
  });
});
