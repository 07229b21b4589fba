/**
 * The Helm chart checked by real helm 3 (#14): `helm lint --strict` and `helm template` for the
 * default values, every deploy/kubernetes/values-*.yaml and a set that turns every optional object
 * on; every rendered object validated against the Kubernetes and prometheus-operator schemas
 * (kubernetes-models; an object of a kind with no schema fails); the config file the chart writes
 * validated by Shoal's own config schema. Then the chart's defects #14 named, each rendered:
 * ca.crt optional, an auth Secret with only one of its files, `config:` keys the chart manages.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { validateConfig } from '../../../src/config/schema.js';
import { helm, helmBinary } from '../../helpers/helm.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const EXAMPLES = readdirSync(path.join(ROOT, 'deploy/kubernetes'))
  .filter((f) => /^values-.*\.yaml$/.test(f))
  .map((f) => `deploy/kubernetes/${f}`);

/** Every optional object on (ServiceMonitor alone: with the PodMonitor too it would double-count). */
const EVERYTHING = [
  'autoscaling.enabled=true',
  'podDisruptionBudget.enabled=true',
  'serviceMonitor.enabled=true',
  'networkPolicy.enabled=true',
  'serviceAccount.create=true',
  'tls.enabled=true',
  'tls.existingSecret=shoal-tls',
  'auth.existingSecret=shoal-auth',
  'admin.existingSecret=shoal-admin',
  'redis.existingSecret=shoal-redis',
];

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
};

let bin: string;
beforeAll(() => {
  bin = helmBinary();
}, 150_000);

function render(args: string[]): K8sObject[] {
  const out = helm(bin, ['template', 'shoal', 'helm/shoal', ...args]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const sets = (list: string[]) => list.flatMap((s) => ['--set', s]);

/** The schema of an object's kind, from kubernetes-models or its prometheus-operator package. */
async function validate(o: K8sObject): Promise<void> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const modulePath =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}`
      : `kubernetes-models/${group === '' ? version : `${group}/${version}`}`;
  const models = (await import(modulePath)) as Record<string, new (o: unknown) => { validate(): void }>;
  const Model = models[o.kind];
  if (Model === undefined) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
  new Model(o).validate();
}

/** The Shoal config file of the rendered ConfigMap. */
function shoalConfig(objects: K8sObject[]): Record<string, unknown> {
  const cm = objects.find((o) => o.kind === 'ConfigMap');
  return parseYaml(cm?.data?.['shoal.yaml'] ?? '') as Record<string, unknown>;
}

describe('the chart, by real helm', () => {
  const cases: [string, string[]][] = [
    ['default values', []],
    ...EXAMPLES.map((f): [string, string[]] => [f, ['-f', f]]),
    ['every optional object on', sets(EVERYTHING)],
  ];

  it.each(cases)('%s: helm lint --strict passes', (_name, args) => {
    expect(helm(bin, ['lint', '--strict', 'helm/shoal', ...args])).toMatch(/0 chart\(s\) failed/);
  });

  it.each(cases)(
    "%s: every rendered object validates against its schema; the config against Shoal's",
    async (_name, args) => {
      const objects = render(args);
      expect(objects.length).toBeGreaterThan(3);
      for (const o of objects)
        await expect(validate(o), `${o.kind} ${o.metadata.name}`).resolves.toBeUndefined();
      expect(() => validateConfig(shoalConfig(objects))).not.toThrow();
    },
  );

  it('every optional object is rendered by the set that turns them on', () => {
    const kinds = new Set(render(sets(EVERYTHING)).map((o) => o.kind));
    for (const k of [
      'Deployment',
      'Service',
      'ConfigMap',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
      'ServiceMonitor',
      'NetworkPolicy',
      'ServiceAccount',
    ])
      expect(kinds, k).toContain(k);
  });
});

describe('the rendered Deployment', () => {
  type Container = {
    env: { name: string; valueFrom?: { secretKeyRef?: unknown } }[];
    lifecycle: { preStop: { exec: { command: string[] } } };
    readinessProbe: { httpGet: { path: string; port: unknown } };
    livenessProbe: { httpGet: { path: string } };
    securityContext: Record<string, unknown>;
  };
  type PodSpec = {
    enableServiceLinks: boolean;
    terminationGracePeriodSeconds: number;
    securityContext: Record<string, unknown>;
    containers: Container[];
  };

  it('turns off service links, drains on preStop, probes /readyz and /healthz, runs hardened, takes secrets from Secrets', () => {
    const objects = render(sets(['redis.url=redis://r:6379', 'admin.token=0123456789abcdef0123']));
    const d = objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: PodSpec } };
    };
    const pod = d.spec.template.spec;
    const [c] = pod.containers;
    expect(pod.enableServiceLinks).toBe(false);
    expect(c.lifecycle.preStop.exec.command.join(' ')).toMatch(/sleep/);
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
    for (const name of ['SHOAL_REDIS', 'SHOAL_ADMIN_TOKEN'])
      expect(c.env.find((e) => e.name === name)?.valueFrom?.secretKeyRef, name).toBeDefined();
    // Nothing secret in the ConfigMap.
    const cm = JSON.stringify(objects.find((o) => o.kind === 'ConfigMap'));
    expect(cm).not.toContain('redis://r');
    expect(cm).not.toContain('0123456789abcdef0123');
  });

  it('the grace period outlasts the preStop sleep and the whole drain (config shutdownTimeoutMs)', () => {
    const objects = render(sets(['drain.timeoutMs=45000', 'drain.preStopSleepSeconds=7']));
    const d = objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: PodSpec } };
    };
    const config = shoalConfig(objects);
    expect(config.shutdownTimeoutMs).toBe(45_000);
    expect(d.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(7_000 + 45_000);
  });
});

describe('defects #14 named, rendered', () => {
  it('(#14) ca.crt is optional: a tls.existingSecret (cert-manager ACME: no ca.crt) is read without a CA unless client certificates are asked for', () => {
    const tls = (extra: string[]) =>
      shoalConfig(render(sets(['tls.enabled=true', 'tls.existingSecret=acme-cert', ...extra]))).tls as Record<
        string,
        unknown
      >;
    const plain = tls([]);
    expect(plain.certFile).toBe('/etc/shoal/tls/tls.crt');
    expect(plain).not.toHaveProperty('caFile');
    expect(tls(['tls.requestClientCert=true']).caFile).toBe('/etc/shoal/tls/ca.crt');
  });

  it('(#14) an auth.existingSecret with only a password file, or only an ACL, mounts and configures just that one', () => {
    for (const [only, key, file] of [
      ['auth.existingSecretAclKey=', 'passwords', 'passwordFile'],
      ['auth.existingSecretPasswordsKey=', 'acl', 'aclFile'],
    ] as const) {
      const objects = render(sets(['auth.existingSecret=mine', only]));
      const auth = shoalConfig(objects).auth as Record<string, unknown>;
      expect(Object.keys(auth).filter((k) => k.endsWith('File'))).toEqual([file]);
      const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as {
        spec: {
          template: {
            spec: { volumes: { name: string; secret?: { secretName: string; items: { key: string }[] } }[] };
          };
        };
      };
      const volume = deployment.spec.template.spec.volumes.find((v) => v.name === 'auth');
      expect(volume?.secret?.secretName).toBe('mine');
      expect(volume?.secret?.items.map((i) => i.key)).toEqual([key]);
    }
  });

  it.each([
    ['httpPort=9000', 'config.httpPort is set by the chart'],
    ['shutdownTimeoutMs=60000', 'use drain.timeoutMs'],
    ['tls.certFile=/x.pem', 'config.tls.certFile is set by the chart'],
    ['cluster.keyPrefix=other', 'use redis.keyPrefix'],
  ])(
    '(#14) config.%s does not silently override what the chart derives from it: refused, naming the value to use',
    (set, message) => {
      expect(() => render(['--set', `config.${set}`])).toThrow(message);
    },
  );

  it('config keys the chart does not manage still go into the config file', () => {
    const config = shoalConfig(
      render(sets(['config.mqtt.maxQueuedMessages=5000', 'config.tls.watchFiles=false'])),
    );
    expect((config.mqtt as Record<string, unknown>).maxQueuedMessages).toBe(5000);
  });
});
