/**
 * Password-file authentication over real sockets: mqtt.js at MQTT 3.1.1 and 5.0, and mosquitto_pub
 * -u/-P, accepted and refused with the right CONNACK codes; anonymous clients; the failure counter.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../src/auth/password-file.js';
import { freePort } from '../../helpers/ports.js';
import { killAllTracked, spawnTracked } from '../../helpers/processes.js';
import { cleanup, connect, online, startAuthServer, tempDir } from './helpers.js';

let passwordFile: string;
beforeEach(async () => {
  passwordFile = path.join(await tempDir(), 'users.passwd');
  await writeFile(
    passwordFile,
    `# test users\nalice:${await hashPassword('wonderland')}\nbob:${await hashPassword('builder')}\n`,
  );
});
afterEach(async () => {
  await killAllTracked();
  await cleanup();
});

describe('password file authentication', () => {
  it.each([
    [5, 'wonderland', 0],
    [5, 'wrong', 0x86],
    [4, 'wonderland', 0],
    [4, 'wrong', 4],
    [3, 'wrong', 4],
  ] as const)(
    '[MQTT-3.1.4-2] [MQTT-3.2.2-7] mqtt.js level %i, password %s: CONNACK %i',
    async (protocolVersion, password, expected) => {
      const b = await startAuthServer({ passwordFile });
      const r = await connect(b.url, {
        protocolVersion,
        protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
        username: 'alice',
        password,
        clientId: `c${protocolVersion}`,
      });
      expect(r.code).toBe(expected);
    },
  );

  it('[MQTT-3.2.2-7] an unknown user gets 0x86 (v5) / 4 (v3.1.1); failures are counted and logged', async () => {
    const httpPort = await freePort();
    const b = await startAuthServer({ passwordFile }, { httpPort });
    expect((await connect(b.url, { protocolVersion: 5, username: 'mallory', password: 'x' })).code).toBe(
      0x86,
    );
    expect((await connect(b.url, { protocolVersion: 4, username: 'mallory', password: 'x' })).code).toBe(4);
    const failed = b.log.events('auth.login_failed');
    expect(failed.map((l) => l.reason)).toEqual(['unknown_user', 'unknown_user']);
    expect(failed[0]).toMatchObject({ username: 'mallory', passwordLength: 1, remote: '127.0.0.1' });
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    expect(metrics.split('\n')).toContain('shoal_auth_failures_total 2');
  });

  it('anonymous clients get in when auth is not required, and get 0x87 / 5 when it is', async () => {
    const open = await startAuthServer({ passwordFile });
    await online(open.url, { protocolVersion: 5 });
    const closed = await startAuthServer({ passwordFile, required: true });
    expect((await connect(closed.url, { protocolVersion: 5 })).code).toBe(0x87);
    expect((await connect(closed.url, { protocolVersion: 4 })).code).toBe(5);
    await online(closed.url, { protocolVersion: 5, username: 'bob', password: 'builder' });
  });

  it('mosquitto_pub -u/-P: the right password publishes, a wrong one is refused', async () => {
    const b = await startAuthServer({ passwordFile, required: true });
    const run = async (version: string, password: string) => {
      const p = await spawnTracked(
        'mosquitto_pub',
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(b.port),
          '-V',
          version,
          '-u',
          'alice',
          '-P',
          password,
          '-t',
          't',
          '-m',
          'x',
          '-q',
          '1',
        ],
        { name: 'mosquitto_pub' },
      );
      return { status: await p.exited, output: p.output() };
    };
    expect((await run('5', 'wonderland')).status.code).toBe(0);
    expect((await run('mqttv311', 'wonderland')).status.code).toBe(0);
    const v5 = await run('5', 'nope');
    expect(v5.status.code).not.toBe(0);
    expect(v5.output).toMatch(/bad user name or password/i);
    const v311 = await run('mqttv311', 'nope');
    expect(v311.status.code).not.toBe(0);
    expect(v311.output).toMatch(/bad user name or password/i);
  });
});
