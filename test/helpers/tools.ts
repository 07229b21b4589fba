/**
 * The programs the test suite runs beside Node, found on PATH. A missing one stops the whole suite
 * at start (test/global-setup.ts) with a message naming it and how to install it, never a skipped
 * test; `.ci/run` installs them on a fresh Debian machine.
 */
import { execFileSync } from 'node:child_process';

/** Program -> the Debian package that ships it. */
export const TOOLS: Readonly<Record<string, string>> = {
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
  mosquitto_sub: 'mosquitto-clients',
  mosquitto_pub: 'mosquitto-clients',
  haproxy: 'haproxy',
  'docker-compose': 'docker-compose',
  openssl: 'openssl',
};

/** The path of `name` on PATH (an env override such as HAPROXY_BIN first), or undefined. */
export function findTool(name: string, override?: string): string | undefined {
  if (override !== undefined && override !== '') return override;
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The path of `name`; throws naming it and its package when it is missing. */
export function requireTool(name: string, override?: string): string {
  const found = findTool(name, override);
  if (found === undefined) throw new Error(missingMessage([name]));
  return found;
}

/** The tools of TOOLS that are missing here. */
export function missingTools(): string[] {
  return Object.keys(TOOLS).filter((name) => findTool(name) === undefined);
}

export function missingMessage(names: string[]): string {
  const packages = [...new Set(names.map((n) => TOOLS[n] ?? n))].join(' ');
  return `the test suite needs ${names.join(', ')} on PATH: apt-get install -y ${packages} (.ci/run installs them)`;
}
