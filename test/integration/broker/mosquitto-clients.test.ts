/**
 * Black-box interoperability with the Mosquitto command-line clients (Debian mosquitto-clients):
 * publish / subscribe at every protocol level, retained messages, persistent sessions, MQTT 5
 * properties and wills. Every wait is on process output or exit, never on time.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { Peers, subscribeTo } from '../../helpers/mqtt.js';
import { killAllTracked, spawnTracked, type TrackedProcess } from '../../helpers/processes.js';

let b: TestBroker;
const peers = new Peers();
beforeAll(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await killAllTracked();
  await peers.closeAll();
});
afterAll(() => b.close());

const levels = [
  ['mqttv31', 3],
  ['mqttv311', 4],
  ['5', 5],
] as const;

/**
 * mosquitto_sub with debug output, line-buffered (stdio block-buffers a pipe; stdbuf execs the client,
 * so the PID is mosquitto_sub's own).
 */
function spawnSub(args: string[]): Promise<TrackedProcess> {
  return spawnTracked(
    'stdbuf',
    ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(b.port), '-d', ...args],
    {
      name: 'mosquitto_sub',
    },
  );
}

/** mosquitto_sub that has printed its SUBACK, so it is ready to receive. */
async function sub(args: string[]): Promise<TrackedProcess> {
  const p = await spawnSub(args);
  await p.waitForOutput(/received SUBACK/);
  return p;
}

/** mosquitto_pub to completion; expects exit code 0. */
async function pub(args: string[]): Promise<void> {
  const p = await spawnTracked('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), ...args], {
    name: 'mosquitto_pub',
  });
  const status = await p.exited;
  expect(status, p.output()).toEqual({ code: 0, signal: null });
}

describe.each(levels)('mosquitto clients, -V %s', (flag, level) => {
  it(`[MQTT-3.1.2-2] (level ${level}) mosquitto_sub receives what mosquitto_pub -q 1 publishes`, async () => {
    const s = await sub(['-V', flag, '-t', `t${level}/#`, '-q', '1', '-C', '1', '-v']);
    await pub(['-V', flag, '-t', `t${level}/x`, '-m', 'hello', '-q', '1']);
    await s.waitForOutput(new RegExp(`^t${level}/x hello$`, 'm'));
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.output()).toMatch(/received PUBLISH \(d0, q1, r0, m\d+, 't\d\/x'/);
  });

  it(`[MQTT-3.3.1-5] [MQTT-3.3.1-9] (level ${level}) a late mosquitto_sub gets the retained message with RETAIN 1`, async () => {
    await pub(['-V', flag, '-t', `r${level}/state`, '-m', `kept ${level}`, '-q', '1', '-r']);
    const s = await spawnSub(['-V', flag, '-t', `r${level}/#`, '-C', '1', '-v']);
    await s.waitForOutput(new RegExp(`^r${level}/state kept ${level}$`, 'm'));
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.output()).toMatch(/received PUBLISH \(d0, q0, r1,/);
    await pub(['-V', flag, '-t', `r${level}/state`, '-n', '-r']); // [MQTT-3.3.1-6] clear it
  });

  it(`[MQTT-3.1.2-8] (level ${level}) the will of a mosquitto_sub killed with SIGKILL is published`, async () => {
    const watcher = await peers.online(b.port, 5);
    await subscribeTo(watcher, `will${level}/#`, 1);
    const s = await sub([
      '-V',
      flag,
      '-t',
      'quiet',
      '--will-topic',
      `will${level}/sub`,
      '--will-payload',
      'killed',
      '--will-qos',
      '1',
    ]);
    s.kill('SIGKILL');
    const got = await watcher.next('publish');
    expect(got).toMatchObject({ topic: `will${level}/sub`, qos: 1 });
    expect(got.payload.toString()).toBe('killed');
  });
});

it('[MQTT-3.1.2-5] [MQTT-3.1.2-23] a persistent mosquitto_sub session (-c) gets the QoS 1 messages sent while it was away', async () => {
  const args = ['-V', 'mqttv311', '-i', 'mosq-persist', '-c', '-q', '1', '-t', 'away/#', '-v'];
  const first = await sub([...args, '-C', '1']);
  await pub(['-t', 'away/1', '-m', 'while here', '-q', '1']);
  await first.waitForOutput(/^away\/1 while here$/m);
  expect(await first.exited).toEqual({ code: 0, signal: null });
  await pub(['-t', 'away/2', '-m', 'while away', '-q', '1']);
  const second = await spawnSub([...args, '-C', '1']);
  await second.waitForOutput(/^away\/2 while away$/m);
  expect(second.output()).toMatch(/received CONNACK \(0\)/);
  expect(await second.exited).toEqual({ code: 0, signal: null });
});

it('[MQTT-3.3.2-17] [MQTT-3.3.2-20] MQTT 5 properties set by mosquitto_pub -D reach an MQTT 5 subscriber unaltered', async () => {
  const watcher = await peers.online(b.port, 5);
  await subscribeTo(watcher, 'props/#', 1);
  await pub([
    '-V',
    '5',
    '-t',
    'props/x',
    '-m',
    'with properties',
    '-q',
    '1',
    '-D',
    'publish',
    'content-type',
    'text/x-test',
    '-D',
    'publish',
    'user-property',
    'k',
    'v',
    '-D',
    'publish',
    'response-topic',
    'props/reply',
  ]);
  const got = await watcher.next('publish');
  expect(got.payload.toString()).toBe('with properties');
  expect(got.properties).toMatchObject({
    contentType: 'text/x-test',
    responseTopic: 'props/reply',
    userProperties: [['k', 'v']],
  });
});
