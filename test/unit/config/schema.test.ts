import { describe, expect, it } from 'vitest';
import { defaultBrokerOptions } from '../../../src/broker/options.js';
import { ConfigError } from '../../../src/config/errors.js';
import { configFields, defaultConfig, validateConfig } from '../../../src/config/schema.js';
import { defaultLimitOptions } from '../../../src/limits/options.js';

/** The message of the ConfigError `fn` throws. */
function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config schema', () => {
  it('fills every default', () => {
    expect(validateConfig({})).toEqual({
      host: '0.0.0.0',
      port: 1883,
      wsPort: 8083,
      wsPath: '/mqtt',
      wsTrustedProxies: [],
      httpPort: 9090,
      redis: null,
      nodeId: null,
      logLevel: 'info',
      tls: {
        port: 0,
        wssPort: 0,
        certFile: null,
        keyFile: null,
        caFile: null,
        requestClientCert: false,
        rejectUnauthorized: true,
        watchFiles: true,
      },
      cluster: {
        heartbeatMs: 1000,
        livenessTimeoutMs: 5000,
        keyPrefix: 'shoal',
        replicaAcks: 0,
        replicaAckTimeoutMs: 1000,
        inboxMaxLength: 10_000,
        partitions: 0,
      },
      mqtt: { ...defaultBrokerOptions },
      auth: {
        required: false,
        passwordFile: null,
        aclFile: null,
        watchFiles: true,
        jwt: {
          secret: null,
          publicKeyFile: null,
          jwksFile: null,
          algorithms: null,
          usernameClaim: 'sub',
          clientIdClaim: 'client_id',
          aclClaim: 'acl',
          requireExpiry: true,
        },
        http: { url: null, timeoutMs: 1000, cacheTtlMs: 30_000, authorize: true },
        tlsIdentity: 'none',
        v3DeniedPublish: 'drop',
        failureBackoff: { enabled: false, initialDelayMs: 1000, maxDelayMs: 60_000 },
      },
      drain: { ratePerSecond: 0, serverReference: null, notReadyDelayMs: 0 },
      persistence: { dir: null, sync: 'batch' },
      admin: { enabled: true, token: null, readOnlyToken: null },
      proxyProtocol: { tcp: false, tls: false, trustedProxies: [], headerTimeoutMs: 3000 },
      limits: { ...defaultLimitOptions },
      shutdownTimeoutMs: 10_000,
      autoSubscribe: [],
      topicRewrite: [],
      flapping: { enabled: false, maxConnects: 15, windowSeconds: 60, banSeconds: 300 },
      delayed: { enabled: true, maxMessages: 100_000, maxDelaySeconds: 4_294_967 },
    });
    expect(defaultConfig).toEqual(validateConfig(undefined));
  });

  it('returns a deeply frozen config', () => {
    const config = validateConfig({ mqtt: { receiveMaximum: 10 } });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.mqtt)).toBe(true);
    expect(Object.isFrozen(config.tls)).toBe(true);
  });

  it('keeps given values and defaults the rest of a section', () => {
    const config = validateConfig({
      mqtt: { receiveMaximum: 10, maximumQoS: 1 },
      tls: { requestClientCert: true },
    });
    expect(config.mqtt.receiveMaximum).toBe(10);
    expect(config.mqtt.maximumQoS).toBe(1);
    expect(config.mqtt.maxInflightMessages).toBe(defaultBrokerOptions.maxInflightMessages);
    expect(config.tls.requestClientCert).toBe(true);
    expect(config.tls.rejectUnauthorized).toBe(true);
  });

  it('accepts port 0 (listener off) for every listener', () => {
    const config = validateConfig({ port: 0, wsPort: 0, httpPort: 0, tls: { port: 0, wssPort: 0 } });
    expect([config.port, config.wsPort, config.httpPort, config.tls.port, config.tls.wssPort]).toEqual([
      0, 0, 0, 0, 0,
    ]);
  });

  it('treats an empty section (YAML `mqtt:`) as all defaults', () => {
    expect(validateConfig({ mqtt: null }).mqtt).toEqual(defaultBrokerOptions);
  });

  it('takes an admin token of 16+ printable characters and never echoes a bad one', () => {
    expect(validateConfig({ admin: { token: 'a-long-enough-token' } }).admin.token).toBe(
      'a-long-enough-token',
    );
    const message = problem(() => validateConfig({ admin: { token: 'short secret' } }));
    expect(message).toMatch(/^admin\.token: must be 16\.\.4096 printable ASCII/);
    expect(message).not.toContain('short secret');
  });

  it('names an unknown key with its path', () => {
    expect(problem(() => validateConfig({ prot: 1 }))).toBe('prot: unknown key');
    expect(problem(() => validateConfig({ mqtt: { receiveMax: 5 } }))).toBe('mqtt.receiveMax: unknown key');
  });

  it('reports every problem at once', () => {
    try {
      validateConfig({ foo: 1, port: -1, mqtt: { bar: true, receiveMaximum: 0 } });
      expect.unreachable();
    } catch (err) {
      const issues = (err as ConfigError).issues.map((i) => i.path);
      expect(issues.sort()).toEqual(['foo', 'mqtt.bar', 'mqtt.receiveMaximum', 'port']);
    }
  });

  it('names bad values with their key path and the rule', () => {
    expect(problem(() => validateConfig({ mqtt: { receiveMaximum: 0 } }))).toBe(
      'mqtt.receiveMaximum: must be an integer 1..65535, got 0',
    );
    expect(problem(() => validateConfig({ port: '1883' }))).toBe(
      'port: must be an integer 0..65535, got "1883"',
    );
    expect(problem(() => validateConfig({ port: 70000 }))).toBe(
      'port: must be an integer 0..65535, got 70000',
    );
    expect(problem(() => validateConfig({ port: 1.5 }))).toBe('port: must be an integer 0..65535, got 1.5');
    expect(problem(() => validateConfig({ logLevel: 'loud' }))).toBe(
      'logLevel: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    );
    expect(problem(() => validateConfig({ mqtt: { maximumQoS: 3 } }))).toBe(
      'mqtt.maximumQoS: must be one of 0, 1, 2, got 3',
    );
    expect(problem(() => validateConfig({ tls: { requestClientCert: 'yes' } }))).toBe(
      'tls.requestClientCert: must be true or false, got "yes"',
    );
    expect(problem(() => validateConfig({ host: '' }))).toBe('host: must be a non-empty string');
    expect(problem(() => validateConfig({ wsPath: 'mqtt' }))).toBe('wsPath: must start with "/"');
    expect(problem(() => validateConfig({ mqtt: [] }))).toBe('mqtt: must be a map of settings, got a list');
    expect(problem(() => validateConfig('port: 1'))).toBe('config: must be a map of settings, got "port: 1"');
    expect(problem(() => validateConfig({ persistence: { sync: 'never' } }))).toBe(
      'persistence.sync: must be one of always, batch, got "never"',
    );
    expect(problem(() => validateConfig({ persistence: { dir: '' } }))).toBe(
      'persistence.dir: must be a non-empty string',
    );
  });

  it('[MQTT-3.1.3-5] does not allow a client id limit below 23 bytes', () => {
    expect(problem(() => validateConfig({ mqtt: { maxClientIdLength: 22 } }))).toMatch(
      /^mqtt\.maxClientIdLength: /,
    );
  });

  it('checks the Redis URL without echoing it (it may hold a password)', () => {
    expect(validateConfig({ redis: 'redis://localhost:6379' }).redis).toBe('redis://localhost:6379');
    const message = problem(() => validateConfig({ redis: 'http://user:secret@host' }));
    expect(message).toBe('redis: must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL');
    expect(message).not.toContain('secret');
  });

  it('checks the node id', () => {
    expect(validateConfig({ nodeId: 'node-1.eu' }).nodeId).toBe('node-1.eu');
    expect(problem(() => validateConfig({ nodeId: 'a b' }))).toMatch(/^nodeId: must be 1\.\.64 characters/);
  });

  it('requires certFile and keyFile when a TLS listener is on', () => {
    expect(problem(() => validateConfig({ tls: { port: 8883 } }))).toBe(
      'tls.certFile: required when tls.port or tls.wssPort is set; tls.keyFile: required when tls.port or tls.wssPort is set',
    );
    expect(problem(() => validateConfig({ tls: { wssPort: 8084, certFile: 'c.pem' } }))).toBe(
      'tls.keyFile: required when tls.port or tls.wssPort is set',
    );
    const config = validateConfig({ tls: { port: 8883, certFile: 'c.pem', keyFile: 'k.pem' } });
    expect(config.tls.port).toBe(8883);
  });

  it('refuses two listeners on one port', () => {
    expect(problem(() => validateConfig({ wsPort: 1883 }))).toBe('wsPort: 1883 is already used by port');
  });

  it('names the flag or variable a bad value came from', () => {
    const sourceOf = (path: string) => (path === 'port' ? 'SHOAL_PORT' : undefined);
    expect(problem(() => validateConfig({ port: 'abc' }, { sourceOf }))).toBe(
      'port (SHOAL_PORT): must be an integer 0..65535, got "abc"',
    );
  });

  it('lists every leaf with its path', () => {
    const paths = configFields().map((f) => f.path);
    expect(paths).toContain('mqtt.receiveMaximum');
    expect(paths).toContain('tls.certFile');
    expect(paths.filter((p) => p.startsWith('mqtt.'))).toHaveLength(Object.keys(defaultBrokerOptions).length);
  });

  it('takes trusted proxies as lists of IP addresses and CIDR ranges', () => {
    const config = validateConfig({
      wsTrustedProxies: ['10.0.0.0/8'],
      proxyProtocol: { tcp: true, trustedProxies: ['127.0.0.1', 'fd00::/8'] },
    });
    expect(config.proxyProtocol.trustedProxies).toEqual(['127.0.0.1', 'fd00::/8']);
    expect(Object.isFrozen(config.proxyProtocol.trustedProxies)).toBe(true);
    expect(problem(() => validateConfig({ wsTrustedProxies: ['10.0.0.0/40'] }))).toContain(
      'wsTrustedProxies: "10.0.0.0/40" has a prefix length outside 0..32',
    );
    expect(problem(() => validateConfig({ proxyProtocol: { trustedProxies: 'lb.example' } }))).toContain(
      'proxyProtocol.trustedProxies: must be a list',
    );
  });

  it('refuses the PROXY protocol without trusted proxies (every connection would be refused)', () => {
    expect(problem(() => validateConfig({ proxyProtocol: { tls: true } }))).toContain(
      'proxyProtocol.trustedProxies: must list the load balancers',
    );
  });

  it('checks limits', () => {
    expect(validateConfig({ limits: { rateLimitAction: 'disconnect' } }).limits.rateLimitAction).toBe(
      'disconnect',
    );
    expect(problem(() => validateConfig({ limits: { rateLimitAction: 'drop' } }))).toContain(
      'limits.rateLimitAction',
    );
    expect(problem(() => validateConfig({ limits: { maxTopicLevels: -1 } }))).toContain(
      'limits.maxTopicLevels',
    );
  });
});

describe('rule lists (#15: autoSubscribe, topicRewrite)', () => {
  it('takes rules, the options left out at their defaults', () => {
    const c = validateConfig({
      autoSubscribe: [{ topic: 'devices/%c/cmd', qos: 1 }],
      topicRewrite: [{ sourceTopic: 'old/#', regex: '^old/(.+)$', destTopic: 'new/$1' }],
    });
    expect(c.autoSubscribe).toEqual([{ topic: 'devices/%c/cmd', qos: 1 }]);
    expect(c.topicRewrite).toHaveLength(1);
  });

  it.each([
    [
      { topicRewrite: [{ sourceTopic: 'a/#', regex: '(', destTopic: 'x' }] },
      /topicRewrite: \[0\]\.regex must be a valid regular expression/,
    ],
    [
      { topicRewrite: [{ sourceTopic: 'a/#/b', regex: 'a', destTopic: 'x' }] },
      /topicRewrite: \[0\]\.sourceTopic must be a valid MQTT topic filter/,
    ],
    [{ topicRewrite: [{ regex: 'a', destTopic: 'x' }] }, /topicRewrite: \[0\]\.sourceTopic is required/],
    [
      { topicRewrite: [{ sourceTopic: 'a', regex: 'a', destTopic: 'x', action: 'both' }] },
      /topicRewrite: \[0\]\.action must be one of publish, subscribe, all/,
    ],
    [
      { autoSubscribe: [{ topic: 'a/%c/#/b' }] },
      /autoSubscribe: \[0\]\.topic must be a valid MQTT topic filter once %c and %u are filled in/,
    ],
    [{ autoSubscribe: [{ topic: 'a', qos: 3 }] }, /autoSubscribe: \[0\]\.qos must be one of 0, 1, 2/],
    [{ autoSubscribe: [{ topic: 'a', share: true }] }, /autoSubscribe: \[0\]\.share is not a key/],
    [{ autoSubscribe: { topic: 'a' } }, /autoSubscribe: must be a list of auto-subscribe rules/],
  ])('refuses %j with a message naming the key', (raw, message) => {
    expect(() => validateConfig(raw)).toThrow(message);
  });
});
