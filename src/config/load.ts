/**
 * Where configuration comes from: the config file, SHOAL_* environment variables and command-line
 * flags, merged in that order (each overrides the one before, all override the schema defaults) and
 * validated once by the schema. Values from the environment and flags are strings, coerced by the
 * type of the key they set; messages about them name the variable or flag.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { type Config, fieldAt, validateConfig } from './schema.js';

/** A key settable from the command line and the environment: the CLI contract. */
export interface Binding {
  readonly path: string;
  readonly flag: string;
  readonly env: string;
  /** Placeholder for the value in --help. */
  readonly value: string;
}

export const BINDINGS: readonly Binding[] = [
  { path: 'host', flag: 'host', env: 'SHOAL_HOST', value: 'address' },
  { path: 'port', flag: 'port', env: 'SHOAL_PORT', value: 'port' },
  { path: 'wsPort', flag: 'ws-port', env: 'SHOAL_WS_PORT', value: 'port' },
  { path: 'httpPort', flag: 'http-port', env: 'SHOAL_HTTP_PORT', value: 'port' },
  { path: 'redis', flag: 'redis', env: 'SHOAL_REDIS', value: 'url' },
  { path: 'nodeId', flag: 'node-id', env: 'SHOAL_NODE_ID', value: 'id' },
  { path: 'persistence.dir', flag: 'data-dir', env: 'SHOAL_DATA_DIR', value: 'dir' },
  { path: 'logLevel', flag: 'log-level', env: 'SHOAL_LOG_LEVEL', value: 'level' },
  { path: 'admin.token', flag: 'admin-token', env: 'SHOAL_ADMIN_TOKEN', value: 'token' },
];

/** The config file's location is not a config key. */
export const CONFIG_FILE_BINDING = { flag: 'config', env: 'SHOAL_CONFIG' } as const;

export const COMMANDS = ['start'] as const;
export type Command = (typeof COMMANDS)[number];

export interface CommandLine {
  readonly command: Command;
  readonly help: boolean;
  readonly version: boolean;
  /** Flag values by flag name (`ws-port`), as given. */
  readonly values: Readonly<Record<string, string | undefined>>;
}

/** Parses argv (without node and the script). Throws a ConfigError on an unknown flag or command. */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    [CONFIG_FILE_BINDING.flag]: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  };
  for (const b of BINDINGS) options[b.flag] = { type: 'string' };

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (err) {
    throw argumentError(err);
  }
  const [command = 'start', ...extra] = parsed.positionals;
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw ConfigError.at(command, `unknown command (expected one of: ${COMMANDS.join(', ')})`);
  }
  if (extra.length > 0) throw ConfigError.at(extra[0], 'unexpected argument');

  const values: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    if (typeof value === 'string') values[name] = value;
  }
  return {
    command: command as Command,
    help: parsed.values.help === true,
    version: parsed.values.version === true,
    values,
  };
}

/** node:util parseArgs errors, reworded to name the flag first. */
function argumentError(err: unknown): ConfigError {
  const e = err as { code?: string; message?: string };
  const flag = /'([^']+)'/.exec(e.message ?? '')?.[1]?.split(' ')[0] ?? 'arguments';
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return ConfigError.at(flag, 'unknown option');
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    return ConfigError.at(
      flag,
      e.message?.includes('argument missing') ? 'needs a value' : String(e.message),
    );
  }
  return ConfigError.at(flag, String(e.message ?? err));
}

export interface LoadOptions {
  /** Arguments after the script name, e.g. `process.argv.slice(2)`. */
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** Directory a relative config file path is resolved against. */
  cwd?: string;
}

/** Reads the file, environment and flags, merges them and validates the result. */
export function loadConfig({ argv = [], env = {}, cwd = process.cwd() }: LoadOptions = {}): Config {
  const cli = parseCommandLine(argv);
  const sources = new Map<string, string>();

  const fileFlag = cli.values[CONFIG_FILE_BINDING.flag];
  const fileEnv = nonEmpty(env[CONFIG_FILE_BINDING.env]);
  const file =
    fileFlag !== undefined
      ? { name: fileFlag, source: `--${CONFIG_FILE_BINDING.flag}` }
      : fileEnv !== undefined
        ? { name: fileEnv, source: CONFIG_FILE_BINDING.env }
        : undefined;
  let merged: Record<string, unknown> = file ? readConfigFile(path.resolve(cwd, file.name), file.source) : {};

  const layers = [
    (b: Binding) => ({ value: nonEmpty(env[b.env]), source: b.env }),
    (b: Binding) => ({ value: cli.values[b.flag], source: `--${b.flag}` }),
  ];
  for (const layer of layers) {
    for (const b of BINDINGS) {
      const { value, source } = layer(b);
      if (value === undefined) continue;
      merged = setPath(merged, b.path, coerce(b.path, value));
      sources.set(b.path, source);
    }
  }

  return validateConfig(merged, { sourceOf: (p) => sources.get(p) });
}

/**
 * An empty variable counts as unset, so `SHOAL_REDIS=` in a compose file means "not given".
 * Note: Kubernetes injects SHOAL_PORT=tcp://… into pods when a Service is named `shoal`; deployments
 * set `enableServiceLinks: false` (see docs/configuration.md).
 */
function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function coerce(keyPath: string, text: string): unknown {
  const field = fieldAt(keyPath);
  if (field === undefined) throw new Error(`config binding names no schema key: ${keyPath}`);
  return field.fromString(text);
}

/** Returns a copy of `target` with `keyPath` set, copying only the sections on the path. */
function setPath(target: Record<string, unknown>, keyPath: string, value: unknown): Record<string, unknown> {
  const [head, ...rest] = keyPath.split('.');
  if (rest.length === 0) return { ...target, [head]: value };
  const child = target[head];
  const section = typeof child === 'object' && child !== null && !Array.isArray(child) ? child : {};
  return { ...target, [head]: setPath(section as Record<string, unknown>, rest.join('.'), value) };
}

/** Reads a YAML or JSON file into a map of settings. YAML is a JSON superset, so other names parse as YAML. */
export function readConfigFile(file: string, source = 'config'): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw ConfigError.at(file, `cannot read config file (${code})`, source);
  }
  let data: unknown;
  const json = path.extname(file).toLowerCase() === '.json';
  try {
    data = json ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const firstLine = String((err as Error).message).split('\n')[0];
    throw ConfigError.at(file, `not valid ${json ? 'JSON' : 'YAML'}: ${firstLine}`, source);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw ConfigError.at(file, 'must contain a map of settings', source);
  }
  return data as Record<string, unknown>;
}
