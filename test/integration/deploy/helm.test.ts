/**
 * The Helm chart checked by real helm 3 (#14): `helm lint --strict` and `helm template` for the
 * default values, every deploy/kubernetes/values-*.yaml and a set that turns every optional object
 * on; every rendered object validated against the Kubernetes and prometheus-operator schemas
 * (kubernetes-models; an object of a kind with no schema fails); the config file the chart writes
 * validated by Shoal's own config schema. Then the chart's defects #14 named, each rendered:
 * ca.crt optional, an auth Secret with only one of its files, `config:` keys the chart manages.
 */
import { readdirSync, readFileSync } from 'node:fs';
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
  'prometheusRule.enabled=true',
  'grafanaDashboard.enabled=true',
  'ingress.enabled=true',
  'ingress.className=nginx',
  'reloader.enabled=true',
  'service.loadBalancerClass=service.k8s.aws/nlb',
];
/** Given as JSON (--set-json): lists of objects. */
const EVERYTHING_JSON = [
  'initContainers=[{"name":"wait-for-redis","image":"redis:7","command":["redis-cli","-h","redis","ping"]}]',
  'sidecars=[{"name":"log-shipper","image":"fluent/fluent-bit:3.0"}]',
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
const everything = () => [...sets(EVERYTHING), ...EVERYTHING_JSON.flatMap((s) => ['--set-json', s])];

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
    ['every optional object on', everything()],
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

describe("what operators of other brokers' charts ask for (#14)", () => {
  // biome-ignore lint/suspicious/noExplicitAny: rendered objects, read field by field by the tests
  type Rendered = Record<string, any>;
  const of = (objects: K8sObject[], kind: string, suffix = '') =>
    objects.find((o) => o.kind === kind && o.metadata.name.endsWith(suffix)) as unknown as Rendered;

  it("the monitors take the job from a label naming the release; the PrometheusRule matches that job and the release's Deployment", () => {
    const objects = render(sets(['serviceMonitor.enabled=true', 'prometheusRule.enabled=true']));
    expect(of(objects, 'ServiceMonitor').spec.jobLabel).toBe('shoal.io/job');
    expect(of(objects, 'Service', '-http').metadata.labels['shoal.io/job']).toBe('shoal');
    expect(of(objects, 'Deployment').spec.template.metadata.labels['shoal.io/job']).toBe('shoal');
    const rules = JSON.stringify(of(objects, 'PrometheusRule').spec);
    expect(rules).toContain('up{job=\\"shoal\\"} == 0');
    expect(rules).toContain('deployment=\\"shoal\\"');
    expect(rules).not.toContain('(.+-)?shoal');
    const other = render(['--set', 'prometheusRule.enabled=true', '--set', 'fullnameOverride=mqtt-prod']);
    expect(JSON.stringify(of(other, 'PrometheusRule').spec)).toContain('job=\\"mqtt-prod\\"');
  });

  it('refuses a ServiceMonitor and a PodMonitor both on (every series scraped twice)', () => {
    expect(() => render(sets(['serviceMonitor.enabled=true', 'podMonitor.enabled=true']))).toThrow(
      /choose one/,
    );
  });

  it('the dashboard ConfigMap carries the Grafana sidecar label and the dashboard of deploy/grafana', () => {
    const cm = of(render(sets(['grafanaDashboard.enabled=true'])), 'ConfigMap', '-dashboard');
    expect(cm.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm.data['shoal.json'])).toEqual(
      JSON.parse(readFileSync(path.join(ROOT, 'deploy/grafana/dashboards/shoal.json'), 'utf8')),
    );
  });

  it("an Ingress routes /mqtt to the Service's WebSocket port; loadBalancerClass, init containers and sidecars are passed through", () => {
    const objects = render(everything());
    const ingress = of(objects, 'Ingress');
    expect(ingress.spec.ingressClassName).toBe('nginx');
    expect(ingress.spec.rules[0].http.paths[0]).toMatchObject({
      path: '/mqtt',
      backend: { service: { port: { name: 'ws' } } },
    });
    expect(of(objects, 'Service').spec.loadBalancerClass).toBe('service.k8s.aws/nlb');
    const pod = of(objects, 'Deployment').spec.template.spec;
    expect(pod.initContainers.map((c: { name: string }) => c.name)).toEqual(['wait-for-redis']);
    expect(pod.containers.map((c: { name: string }) => c.name)).toEqual(['shoal', 'log-shipper']);
    // Reloader rolls the pods for the Secrets Shoal reads only at start.
    expect(of(objects, 'Deployment').metadata.annotations['secret.reloader.stakater.com/reload']).toBe(
      'shoal-redis,shoal-admin',
    );
  });

  it('helm test: a hook Pod that publishes through the Service with mosquitto_pub and waits for the message with mosquitto_sub', () => {
    const pod = of(render([]), 'Pod');
    expect(pod.metadata.annotations['helm.sh/hook']).toBe('test');
    const script = pod.spec.containers[0].args[0] as string;
    expect(script).toContain('mosquitto_pub');
    expect(script).toContain('mosquitto_sub');
    expect(pod.spec.containers[0].env).toContainEqual({ name: 'HOST', value: 'shoal.default.svc' });
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

  it("(#14) the keep-alive cap fits load balancers' idle timeouts by default, and is refused in config", () => {
    expect((shoalConfig(render([])).mqtt as Record<string, unknown>).maxKeepAliveSeconds).toBe(240);
    expect(() => render(['--set', 'config.mqtt.maxKeepAliveSeconds=3600'])).toThrow(
      /use maxKeepAliveSeconds/,
    );
  });

  it('config keys the chart does not manage still go into the config file', () => {
    const config = shoalConfig(
      render(sets(['config.mqtt.maxQueuedMessages=5000', 'config.tls.watchFiles=false'])),
    );
    expect((config.mqtt as Record<string, unknown>).maxQueuedMessages).toBe(5000);
  });
});
