/**
 * The Grafana dashboard, the Prometheus alert rules and docs/metrics.md against the metrics a live
 * node exports: every series a PromQL expression names exists in /metrics of an in-process server
 * (histograms with their _bucket / _sum / _count series), and every exported shoal_* metric is
 * documented. `up` is the one series Prometheus itself adds.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/observability/logger.js';
import { type RunningServer, startServer } from '../../../src/server.js';
import { freePort } from '../../helpers/ports.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

/** Series Prometheus adds to every target. */
/** Series of Prometheus itself and of kube-state-metrics (Kubernetes-only rules). */
const PROMETHEUS_SERIES = new Set([
  'up',
  'scrape_duration_seconds',
  'scrape_samples_scraped',
  'kube_deployment_status_replicas_ready',
  'kube_deployment_spec_replicas',
]);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
]);

let server: RunningServer;
/** Metric name -> type, from the # TYPE lines of a live /metrics. */
const exported = new Map<string, string>();
/** Every series name a query may use (histograms expanded). */
const series = new Set<string>();

beforeAll(async () => {
  server = await startServer(
    validateConfig({ host: '127.0.0.1', port: await freePort(), wsPort: 0, httpPort: await freePort() }),
    { logger: createLogger('silent') },
  );
  const text = await (await fetch(`http://127.0.0.1:${server.ports.http}/metrics`)).text();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) exported.set(m[1], m[2]);
  for (const [name, type] of exported) {
    series.add(name);
    if (type === 'histogram' || type === 'summary')
      for (const s of ['_bucket', '_sum', '_count']) series.add(name + s);
  }
});

afterAll(async () => {
  await server?.close();
});

/** Metric names in a PromQL expression: label matchers, grouping lists, strings and functions removed. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?/g)) {
    if (m[1] !== undefined) continue; // a function call
    if (KEYWORDS.has(m[0]) || /^\d/.test(m[0])) continue;
    names.push(m[0]);
  }
  return names;
}

function dashboardExprs(): string[] {
  const dash = JSON.parse(read('deploy/grafana/dashboards/shoal.json')) as {
    panels: { targets?: { expr: string }[] }[];
    templating: { list: { query?: unknown }[] };
  };
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of dash.templating.list) {
    const q = (v.query as { query?: string } | undefined)?.query;
    const inner = q === undefined ? undefined : /label_values\((\w+)/.exec(q)?.[1];
    if (inner !== undefined) exprs.push(inner);
  }
  return exprs;
}

function alertRules(): { alert: string; expr: string }[] {
  const file = parseYaml(read('deploy/prometheus/alerts.yml')) as {
    groups: { rules: { alert: string; expr: string; labels?: { severity?: string } }[] }[];
  };
  return file.groups.flatMap((g) => g.rules);
}

describe('metric name extraction', () => {
  it('keeps metric names and drops functions, labels and keywords', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (instance, le) (rate(shoal_x_bucket{instance=~"$instance"}[5m]))) > 1 and up == 0',
      ),
    ).toEqual(['shoal_x_bucket', 'up']);
  });
});

describe('Grafana dashboard', () => {
  it('uses only series the broker exports', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(30);
    for (const expr of exprs)
      for (const name of metricNames(expr)) expect(series.has(name), `${name} in: ${expr}`).toBe(true);
  });

  it('covers the metric families operators need', () => {
    const used = new Set(dashboardExprs().flatMap(metricNames));
    for (const m of [
      'shoal_connections',
      'shoal_connections_total',
      'shoal_sessions_offline',
      'shoal_publish_received_total',
      'shoal_publish_sent_total',
      'shoal_messages_dropped_total',
      'shoal_auth_failures_total',
      'shoal_rate_limited_total',
      'shoal_takeover_duration_seconds_bucket',
      'shoal_cluster_nodes',
      'shoal_cluster_batch_size_bucket',
      'shoal_cluster_inbox_lag_seconds_bucket',
      'shoal_redis_command_duration_seconds_bucket',
      'shoal_redis_command_errors_total',
      'shoal_nodejs_eventloop_lag_p99_seconds',
      'shoal_nodejs_heap_size_used_bytes',
      'shoal_nodejs_gc_duration_seconds_sum',
    ])
      expect(used, m).toContain(m);
  });

  it('has unique panel ids and a datasource variable', () => {
    const dash = JSON.parse(read('deploy/grafana/dashboards/shoal.json')) as {
      uid: string;
      panels: { id: number }[];
      templating: { list: { name: string }[] };
    };
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dash.templating.list.map((v) => v.name)).toEqual(['datasource', 'namespace', 'job', 'node']);
    expect(dash.uid).toBe('shoal-overview');
  });

  it('(#14) every query is of the chosen namespace and release (job), per-node legends name the node id, every panel has a unit', () => {
    const dash = JSON.parse(read('deploy/grafana/dashboards/shoal.json')) as {
      panels: {
        type: string;
        title: string;
        fieldConfig?: { defaults?: { unit?: string } };
        targets?: { expr: string; legendFormat?: string }[];
      }[];
    };
    for (const panel of dash.panels) {
      if (panel.type === 'row') continue;
      expect(panel.fieldConfig?.defaults?.unit, panel.title).toBeTruthy();
      for (const t of panel.targets ?? []) {
        // Each series selector of a shoal_* metric carries the two filters.
        for (const m of t.expr.matchAll(/\b(shoal_[a-z0-9_]+)(\{[^}]*\})?/g))
          expect(m[2] ?? '', `${panel.title}: ${m[1]}`).toContain('namespace=~"$namespace",job=~"$job"');
        expect(t.legendFormat ?? '', panel.title).not.toContain('{{instance}}');
      }
    }
  });
});

describe('Prometheus alert rules', () => {
  it('use only series the broker exports (and up)', () => {
    const rules = alertRules();
    expect(rules.length).toBeGreaterThan(5);
    for (const { alert, expr } of rules)
      for (const name of metricNames(expr))
        expect(series.has(name) || PROMETHEUS_SERIES.has(name), `${alert}: ${name}`).toBe(true);
  });

  it('cover node down, Redis errors, drops and inbox lag, each with a severity and a summary', () => {
    const rules = alertRules() as {
      alert: string;
      labels?: { severity?: string };
      annotations?: { summary?: string };
    }[];
    const names = rules.map((r) => r.alert);
    for (const a of ['ShoalNodeDown', 'ShoalRedisErrors', 'ShoalMessagesDropped', 'ShoalInboxLag'])
      expect(names).toContain(a);
    for (const r of rules) {
      expect(r.labels?.severity, r.alert).toMatch(/^(critical|warning|info)$/);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
    }
  });
});

describe('docs/metrics.md', () => {
  it('documents every shoal_* metric the broker exports', () => {
    const doc = read('docs/metrics.md');
    const missing = [...exported.keys()].filter((name) => !doc.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });
});
