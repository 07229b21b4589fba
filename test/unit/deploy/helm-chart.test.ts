/**
 * The Helm chart's sources, checked without rendering: Chart.yaml fields, values.yaml against
 * values.schema.json, every `.Values.x` a template uses present in values.yaml and the schema,
 * every value documented in the chart's README, the example values in deploy/kubernetes/ valid.
 * What the chart renders is checked by real helm in test/integration/deploy/helm.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHART = path.join(ROOT, 'helm/shoal');
const read = (p: string) => readFileSync(path.join(CHART, p), 'utf8');

type Json = Record<string, unknown>;
const values = parseYaml(read('values.yaml')) as Json;
const schema = JSON.parse(read('values.schema.json')) as Json;
const templateFiles = (readdirSync(path.join(CHART, 'templates'), { recursive: true }) as string[]).filter(
  (f) => /\.(yaml|tpl|txt)$/.test(f),
);
const templates = new Map(templateFiles.map((f) => [f, read(`templates/${f}`)]));

/**
 * Leaf paths of a values tree: a scalar, a list, an empty map, or a map the schema leaves free-form
 * (resources, securityContext, config...: documented as one value).
 */
function leaves(v: unknown, node: Json | undefined = schema, prefix = ''): string[] {
  const props = node?.properties as Record<string, Json> | undefined;
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    Object.keys(v).length === 0 ||
    props === undefined
  )
    return [prefix.slice(0, -1)];
  return Object.entries(v).flatMap(([k, c]) => leaves(c, props[k], `${prefix}${k}.`));
}

/** True when `dotted` names a value: present in values.yaml (or inside a free-form map there). */
function inValues(dotted: string): boolean {
  let node: unknown = values;
  for (const key of dotted.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return false;
    if (!Object.hasOwn(node, key)) return false;
    node = (node as Json)[key];
  }
  return true;
}

/** The schema node for `dotted`; a free-form object (no `properties`) covers everything below it. */
function inSchema(dotted: string): boolean {
  let node = schema;
  for (const key of dotted.split('.')) {
    const props = node.properties as Record<string, Json> | undefined;
    if (props === undefined) return node.type === 'object';
    if (!Object.hasOwn(props, key)) return false;
    node = props[key];
  }
  return true;
}

/** Every `.Values.a.b` in the templates (also `$.Values...`). */
function usedValues(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  for (const [file, text] of templates) {
    for (const m of text.matchAll(/\.Values((?:\.[A-Za-z0-9_]+)+)/g)) {
      const p = m[1].slice(1);
      used.set(p, [...(used.get(p) ?? []), file]);
    }
  }
  return used;
}

function ajv() {
  return new Ajv({ allErrors: true, strict: false });
}

describe('Chart.yaml', () => {
  const chart = parseYaml(read('Chart.yaml')) as Json;
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

  it('is an apiVersion v2 application chart named shoal with semver versions', () => {
    expect(chart.apiVersion).toBe('v2');
    expect(chart.name).toBe('shoal');
    expect(chart.type).toBe('application');
    expect(String(chart.version)).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
    expect(typeof chart.description).toBe('string');
    expect(chart.kubeVersion).toMatch(/^>=/);
  });

  it('runs the Shoal version of package.json', () => {
    expect(chart.appVersion).toBe(pkg.version);
  });
});

describe('values', () => {
  it('values.yaml validates against values.schema.json', () => {
    const validate = ajv().compile(schema);
    expect(validate(values), JSON.stringify(validate.errors)).toBe(true);
  });

  it('the schema rejects a wrong value and an unknown key', () => {
    const validate = ajv().compile(schema);
    expect(validate({ ...values, service: { ...(values.service as Json), type: 'Ingress' } })).toBe(false);
    expect(validate({ ...values, replicaCont: 3 })).toBe(false);
    expect(validate({ ...values, admin: { ...(values.admin as Json), token: 'short' } })).toBe(false);
  });

  it('every value is in the schema and in the README', () => {
    const readme = read('README.md');
    for (const leaf of leaves(values)) {
      expect(inSchema(leaf), `${leaf} in values.schema.json`).toBe(true);
      expect(readme, `${leaf} in README.md`).toContain(`\`${leaf}\``);
    }
  });

  it('every .Values path a template uses exists in values.yaml and the schema', () => {
    const used = usedValues();
    expect(used.size).toBeGreaterThan(50);
    for (const [p, files] of used) {
      expect(inValues(p), `.Values.${p} (${files.join(', ')}) in values.yaml`).toBe(true);
      expect(inSchema(p), `.Values.${p} in values.schema.json`).toBe(true);
    }
  });

  it.each(readdirSync(path.join(ROOT, 'deploy/kubernetes')).filter((f) => f.endsWith('.yaml')))(
    'deploy/kubernetes/%s is valid chart values',
    (file) => {
      const example = parseYaml(readFileSync(path.join(ROOT, 'deploy/kubernetes', file), 'utf8')) as Json;
      const merged = deepMerge(values, example);
      const validate = ajv().compile(schema);
      expect(validate(merged), JSON.stringify(validate.errors)).toBe(true);
      // More than one replica needs Redis (the chart fails to render otherwise).
      const redis = merged.redis as Json;
      const clustered =
        redis.url !== '' ||
        redis.existingSecret !== '' ||
        ((redis.sentinel as Json).hosts as unknown[]).length > 0 ||
        ((redis.cluster as Json).nodes as unknown[]).length > 0;
      if ((merged.replicaCount as number) > 1) expect(clustered).toBe(true);
    },
  );
});

describe('the files the chart ships', () => {
  it.each([
    ['files/alerts.yml', 'deploy/prometheus/alerts.yml'],
    ['files/dashboard.json', 'deploy/grafana/dashboards/shoal.json'],
  ])('%s is the same as %s (copy it after changing that one)', (copy, source) => {
    expect(read(copy)).toBe(readFileSync(path.join(ROOT, source), 'utf8'));
  });
});

describe('templates', () => {
  it('has the resources the chart promises', () => {
    for (const f of [
      'deployment.yaml',
      'service.yaml',
      'configmap.yaml',
      'secret.yaml',
      'hpa.yaml',
      'pdb.yaml',
      'servicemonitor.yaml',
      'podmonitor.yaml',
      'networkpolicy.yaml',
      'serviceaccount.yaml',
      'prometheusrule.yaml',
      'dashboard.yaml',
      'ingress.yaml',
      'tests/mqtt-roundtrip.yaml',
      'NOTES.txt',
      '_helpers.tpl',
    ])
      expect(templateFiles).toContain(f);
  });
});

function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      typeof b === 'object' &&
      b !== null &&
      !Array.isArray(b)
        ? deepMerge(b as Json, v as Json)
        : v;
  }
  return out;
}
