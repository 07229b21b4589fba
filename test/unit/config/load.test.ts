import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.js';
import { loadConfig, parseCommandLine } from '../../../src/config/load.js';
import { defaultConfig } from '../../../src/config/schema.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'shoal-config-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns the defaults with no file, environment or flags', () => {
    expect(loadConfig({ argv: [], env: {} })).toEqual(defaultConfig);
    expect(loadConfig({ argv: ['start'], env: {} })).toEqual(defaultConfig);
  });

  it('maps every flag to its key', () => {
    const config = loadConfig({
      argv: [
        '--host',
        '127.0.0.1',
        '--port',
        '1884',
        '--ws-port',
        '8084',
        '--http-port=9091',
        '--node-id',
        'n1',
        '--log-level',
        'debug',
        '--data-dir',
        '/var/lib/shoal',
      ],
      env: {},
    });
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 1884,
      wsPort: 8084,
      httpPort: 9091,
      nodeId: 'n1',
      logLevel: 'debug',
      persistence: { dir: '/var/lib/shoal', sync: 'batch' },
    });
  });

  it('maps every SHOAL_ variable to its key, coercing ports to integers', () => {
    const config = loadConfig({
      env: {
        SHOAL_HOST: '::1',
        SHOAL_PORT: '2883',
        SHOAL_WS_PORT: '0',
        SHOAL_HTTP_PORT: '9191',
        SHOAL_REDIS: 'redis://localhost:6379',
        SHOAL_NODE_ID: 'n2',
        SHOAL_LOG_LEVEL: 'warn',
        SHOAL_DATA_DIR: '/data',
      },
    });
    expect(config).toMatchObject({
      host: '::1',
      port: 2883,
      wsPort: 0,
      httpPort: 9191,
      redis: 'redis://localhost:6379',
      nodeId: 'n2',
      logLevel: 'warn',
      persistence: { dir: '/data' },
    });
  });

  it('merges file < environment < flags, each over the defaults', () => {
    const yaml = file(
      'precedence.yaml',
      'port: 1000\nwsPort: 2000\nhttpPort: 3000\nmqtt:\n  receiveMaximum: 7\n',
    );
    const config = loadConfig({
      argv: ['--config', yaml, '--port', '1002'],
      env: { SHOAL_PORT: '1001', SHOAL_WS_PORT: '2001' },
    });
    expect(config.port).toBe(1002); // flag over env and file
    expect(config.wsPort).toBe(2001); // env over file
    expect(config.httpPort).toBe(3000); // file over default
    expect(config.mqtt.receiveMaximum).toBe(7);
    expect(config.mqtt.maxInflightMessages).toBe(defaultConfig.mqtt.maxInflightMessages); // default
  });

  it('disables a listener with port 0 from any source', () => {
    const json = file('zero.json', '{"httpPort": 0}');
    const config = loadConfig({ argv: ['--ws-port', '0', '--config', json], env: { SHOAL_PORT: '0' } });
    expect([config.port, config.wsPort, config.httpPort]).toEqual([0, 0, 0]);
  });

  it('reads a JSON file', () => {
    const json = file('shoal.json', JSON.stringify({ host: '127.0.0.1', tls: { requestClientCert: true } }));
    const config = loadConfig({ argv: ['--config', json] });
    expect(config.host).toBe('127.0.0.1');
    expect(config.tls.requestClientCert).toBe(true);
  });

  it('reads a YAML file, and any other extension as YAML (a JSON superset)', () => {
    const yml = file('shoal.yml', 'logLevel: trace\nmqtt:\n  maximumQoS: 1\n  retainAvailable: false\n');
    expect(loadConfig({ argv: ['--config', yml] }).mqtt).toMatchObject({
      maximumQoS: 1,
      retainAvailable: false,
    });
    const conf = file('shoal.conf', '{"port": 1999}');
    expect(loadConfig({ argv: ['--config', conf] }).port).toBe(1999);
    const empty = file('empty.yaml', '');
    expect(loadConfig({ argv: ['--config', empty] })).toEqual(defaultConfig);
  });

  it('takes the file from SHOAL_CONFIG, --config winning, relative to cwd', () => {
    file('a.yaml', 'port: 1111\n');
    file('b.yaml', 'port: 2222\n');
    expect(loadConfig({ env: { SHOAL_CONFIG: 'a.yaml' }, cwd: dir }).port).toBe(1111);
    expect(loadConfig({ argv: ['--config', 'b.yaml'], env: { SHOAL_CONFIG: 'a.yaml' }, cwd: dir }).port).toBe(
      2222,
    );
  });

  it('names unknown keys in the file with their path', () => {
    const yaml = file('unknown.yaml', 'prot: 1883\nmqtt:\n  recieveMaximum: 10\n');
    expect(problem(() => loadConfig({ argv: ['--config', yaml] }))).toBe(
      'prot: unknown key; mqtt.recieveMaximum: unknown key',
    );
  });

  it('names a bad value in the file with its key path', () => {
    const yaml = file('bad.yaml', 'mqtt:\n  receiveMaximum: 70000\n');
    expect(problem(() => loadConfig({ argv: ['--config', yaml] }))).toBe(
      'mqtt.receiveMaximum: must be an integer 1..65535, got 70000',
    );
  });

  it('does not coerce strings in a file: types there are the file author’s', () => {
    const yaml = file('string-port.yaml', 'port: "1883"\n');
    expect(problem(() => loadConfig({ argv: ['--config', yaml] }))).toBe(
      'port: must be an integer 0..65535, got "1883"',
    );
  });

  it('names the variable when SHOAL_PORT is not a number', () => {
    expect(problem(() => loadConfig({ env: { SHOAL_PORT: 'tcp://10.0.0.1:1883' } }))).toBe(
      'port (SHOAL_PORT): must be an integer 0..65535, got "tcp://10.0.0.1:1883"',
    );
  });

  it('names the flag when --ws-port is out of range', () => {
    expect(problem(() => loadConfig({ argv: ['--ws-port', '65536'] }))).toBe(
      'wsPort (--ws-port): must be an integer 0..65535, got 65536',
    );
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ env: { SHOAL_PORT: '', SHOAL_REDIS: '' } })).toEqual(defaultConfig);
  });

  it('refuses an unknown flag, a flag without a value and an unknown command', () => {
    expect(problem(() => loadConfig({ argv: ['--prot', '1883'] }))).toBe('--prot: unknown option');
    expect(problem(() => loadConfig({ argv: ['--port'] }))).toBe('--port: needs a value');
    expect(problem(() => loadConfig({ argv: ['serve'] }))).toBe(
      'serve: unknown command (expected one of: start)',
    );
    expect(problem(() => loadConfig({ argv: ['start', 'now'] }))).toBe('now: unexpected argument');
  });

  it('names a config file it cannot read or parse', () => {
    const missing = path.join(dir, 'missing.yaml');
    expect(problem(() => loadConfig({ argv: ['--config', missing] }))).toBe(
      `${missing} (--config): cannot read config file (ENOENT)`,
    );
    const badYaml = file('bad-syntax.yaml', 'port: [1\n');
    expect(problem(() => loadConfig({ env: { SHOAL_CONFIG: badYaml } }))).toMatch(
      new RegExp(`^${badYaml} \\(SHOAL_CONFIG\\): not valid YAML: `),
    );
    const badJson = file('bad.json', '{"port": }');
    expect(problem(() => loadConfig({ argv: ['--config', badJson] }))).toMatch(
      /\(--config\): not valid JSON: /,
    );
    const list = file('list.yaml', '- 1\n- 2\n');
    expect(problem(() => loadConfig({ argv: ['--config', list] }))).toBe(
      `${list} (--config): must contain a map of settings`,
    );
  });
});

describe('parseCommandLine', () => {
  it('defaults to start and reads --help and --version', () => {
    expect(parseCommandLine([])).toMatchObject({ command: 'start', help: false, version: false });
    expect(parseCommandLine(['--help'])).toMatchObject({ help: true });
    expect(parseCommandLine(['-v'])).toMatchObject({ version: true });
  });
});
