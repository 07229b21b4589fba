/**
 * docker-compose.yml, the HAProxy config and the nodes' config file, checked here without a Docker
 * engine: the services and the files they mount, the nodes' config file loaded by Shoal's own
 * config loader, PROXY protocol trusted from HAProxy's address only, HAProxy health checks on
 * /readyz, the stop grace period covering the drain, the Dockerfile's promises; `haproxy -c` and
 * `docker-compose config` run where those tools are installed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../../src/config/load.js';
import { requireTool } from '../../helpers/tools.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  stop_grace_period?: string;
  networks?: Record<string, { ipv4_address?: string }> | string[];
}
const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
};
const nodes = Object.keys(compose.services).filter((s) => /^shoal-\d$/.test(s));

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration);
  if (m === null) throw new Error(`duration ${duration}`);
  return Number(m[1]) / (m[2] === 'ms' ? 1000 : m[2] === 'm' ? 1 / 60 : 1);
}

describe('docker-compose.yml', () => {
  it('runs Redis, three Shoal nodes, HAProxy, Prometheus and Grafana', () => {
    expect(nodes).toEqual(['shoal-1', 'shoal-2', 'shoal-3']);
    for (const s of ['redis', 'haproxy', 'prometheus', 'grafana']) expect(compose.services).toHaveProperty(s);
  });

  it('mounts only files that exist', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0];
        if (!source.startsWith('./')) continue;
        expect(existsSync(path.join(ROOT, source)), `${name}: ${source}`).toBe(true);
      }
    }
  });

  it('(#14) binds only MQTT and WebSocket to every address; the admin API, stats, Prometheus and Grafana to 127.0.0.1', () => {
    const published = Object.entries(compose.services).flatMap(([name, s]) =>
      (s.ports ?? []).map((p) => [name, p] as const),
    );
    for (const [name, p] of published)
      if (!['1883:1883', '8083:8083'].includes(p)) expect(p, name).toMatch(/^127\.0\.0\.1:/);
  });

  it('(#14) has no admin token or Grafana password that works as is: compose refuses to start without them', () => {
    for (const node of nodes)
      expect(compose.services[node].environment?.SHOAL_ADMIN_TOKEN).toMatch(/^\$\{SHOAL_ADMIN_TOKEN:\?/);
    expect(compose.services.grafana.environment?.GF_SECURITY_ADMIN_PASSWORD).toMatch(
      /^\$\{GRAFANA_ADMIN_PASSWORD:\?/,
    );
  });

  it.each(nodes)('%s: its config file and environment load as a valid Shoal config', (node) => {
    const s = compose.services[node];
    const env = {
      ...s.environment,
      SHOAL_ADMIN_TOKEN: 'test-admin-token-0123456789',
      SHOAL_CONFIG: path.join(ROOT, 'deploy/compose/shoal.yaml'),
    };
    const config = loadConfig({ env, cwd: ROOT });
    expect(config.nodeId).toBe(node);
    expect(config.redis).toBe('redis://redis:6379');
    expect(config.admin.token).not.toBeNull();
    expect(config.proxyProtocol.tcp).toBe(true);
    // Only HAProxy may send PROXY headers.
    const haproxyNet = compose.services.haproxy.networks as Record<string, { ipv4_address?: string }>;
    expect(config.proxyProtocol.trustedProxies).toEqual([haproxyNet.shoal.ipv4_address]);
    // Docker sends SIGKILL after stop_grace_period: the drain must end first.
    const drainMs = config.drain.notReadyDelayMs + config.shutdownTimeoutMs;
    expect(seconds(s.stop_grace_period as string) * 1000).toBeGreaterThan(drainMs + 2000);
  });

  it('Prometheus scrapes every node', () => {
    const prom = parseYaml(read('deploy/prometheus/prometheus.yml')) as {
      scrape_configs: { static_configs: { targets: string[] }[] }[];
      rule_files: string[];
    };
    const targets = prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
    expect(targets.sort()).toEqual(nodes.map((n) => `${n}:9090`));
    expect(prom.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
  });

  it('docker-compose config accepts the file', () => {
    const out = execFileSync(
      requireTool('docker-compose'),
      ['-f', 'docker-compose.yml', 'config', '--quiet'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: {
          ...process.env,
          SHOAL_ADMIN_TOKEN: 'test-admin-token-0123456789',
          GRAFANA_ADMIN_PASSWORD: 'test-grafana-password',
        },
      },
    );
    expect(out.trim()).toBe('');
  });
});

describe('HAProxy', () => {
  const cfg = read('deploy/haproxy/haproxy.cfg');

  it('balances MQTT over every node with PROXY protocol v2 and /readyz health checks', () => {
    const backend = cfg.slice(cfg.search(/^backend shoal_mqtt$/m), cfg.search(/^backend shoal_ws$/m));
    expect(backend).toContain('option httpchk GET /readyz');
    expect(backend).toContain('http-check expect status 200');
    expect(backend).toMatch(/default-server .*check port 9090.*send-proxy-v2/);
    expect([...backend.matchAll(/^\s*server (\S+) (\S+):1883/gm)].map((m) => m[1])).toEqual(nodes);
    // Cutting sessions when a node turns not-ready would defeat the drain's DISCONNECT.
    expect(cfg).not.toMatch(/^\s*[^#\n]*on-marked-down shutdown-sessions/m);
    expect(cfg).toContain('option redispatch');
  });

  it('(#14) its idle timeouts outlast a silent client the nodes would keep (1.5 times mqtt.maxKeepAliveSeconds)', () => {
    const config = loadConfig({
      env: { SHOAL_CONFIG: path.join(ROOT, 'deploy/compose/shoal.yaml') },
      cwd: ROOT,
    });
    const keepAlive = config.mqtt.maxKeepAliveSeconds;
    expect(keepAlive).toBeGreaterThan(0);
    const defaults = cfg.slice(cfg.search(/^defaults$/m), cfg.search(/^resolvers /m));
    for (const t of ['client', 'server', 'tunnel']) {
      const m = new RegExp(`^\\s*timeout ${t} (\\d+)(s|m)$`, 'm').exec(defaults);
      expect(m, `timeout ${t}`).not.toBeNull();
      const seconds = Number(m![1]) * (m![2] === 'm' ? 60 : 1);
      expect(seconds, `timeout ${t}`).toBeGreaterThan(1.5 * keepAlive);
    }
  });

  it('(#14) balances WebSocket in HTTP mode with X-Forwarded-For, which the nodes trust from HAProxy only', () => {
    const front = cfg.slice(cfg.search(/^frontend mqtt_ws$/m), cfg.search(/^backend shoal_mqtt$/m));
    expect(front).toMatch(/^\s*mode http$/m);
    expect(front).toMatch(/^\s*option forwardfor$/m);
    const config = loadConfig({
      env: { SHOAL_CONFIG: path.join(ROOT, 'deploy/compose/shoal.yaml') },
      cwd: ROOT,
    });
    const haproxyNet = compose.services.haproxy.networks as Record<string, { ipv4_address?: string }>;
    expect(config.wsTrustedProxies).toEqual([haproxyNet.shoal.ipv4_address]);
  });

  it('haproxy -c accepts the file', () => {
    const bin = requireTool('haproxy');
    // Exits non-zero on an invalid file; unresolvable node names are only warnings (init-addr none).
    execFileSync(bin as string, ['-c', '-q', '-f', path.join(ROOT, 'deploy/haproxy/haproxy.cfg')], {
      stdio: 'pipe',
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('builds in two stages on Node 22 slim and runs as a non-root user', () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms).toEqual(['node:22-slim', 'node:22-slim']);
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
    expect(dockerfile).toMatch(/^EXPOSE 1883 8883 8083 8084 9090$/m);
  });

  it("declares a volume for the single node's data dir and points persistence.dir at it", () => {
    expect(dockerfile).toMatch(/^VOLUME \["\/data"\]$/m);
    expect(dockerfile).toMatch(/^ENV SHOAL_DATA_DIR=\/data$/m);
    expect(dockerfile).toMatch(/^RUN mkdir \/data && chown node:node \/data$/m);
  });
});
