import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => {
  await b.close();
});

for (const protocolVersion of [4, 5] as const) {
  it(`pub/sub v${protocolVersion}`, async () => {
    const sub = await mqtt.connectAsync(b.url, { protocolVersion, clientId: `s${protocolVersion}` });
    await sub.subscribeAsync('a/+', { qos: 1 });
    const pub = await mqtt.connectAsync(b.url, { protocolVersion });
    const got = new Promise<[string, string]>((r) => sub.on('message', (t, p) => r([t, p.toString()])));
    await pub.publishAsync('a/b', 'hello', { qos: 1 });
    expect(await got).toEqual(['a/b', 'hello']);
    await pub.endAsync();
    await sub.endAsync();
  });
}
