/**
 * The `shoal` command: `shoal [start] [flags]`, `shoal passwd FILE USER [--delete]`,
 * `shoal repair-data DIR`, `shoal --help`, `shoal --version`. Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 2 for a configuration
 * problem, 1 otherwise. SIGHUP rereads the auth files (passwords, ACL, JWT keys) and the TLS certificate.
 */
import { type PasswdInput, passwdCommand } from './auth/passwd-command.js';
import { DiskJournal } from './backend/disk/disk-journal.js';
import { ConfigError } from './config/errors.js';
import { BINDINGS, CONFIG_FILE_BINDING, loadConfig, parseCommandLine } from './config/load.js';
import { type Config, fieldAt } from './config/schema.js';
import { createLogger, type Logger } from './observability/logger.js';
import { startServer } from './server.js';
import { VERSION } from './version.js';

export interface CliOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processOutput: CliOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 2;

/** Runs the command; resolves with the exit code (for `start`, once the server has stopped). */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  out: CliOutput = processOutput,
  stdin: PasswdInput = process.stdin,
): Promise<number> {
  if (argv[0] === 'passwd') return passwdCommand(argv.slice(1), { stdin, ...out });
  if (argv[0] === 'repair-data') return repairData(argv.slice(1), out);
  let config: Config;
  try {
    const cli = parseCommandLine(argv);
    if (cli.help) {
      out.stdout(usage());
      return EXIT_OK;
    }
    if (cli.version) {
      out.stdout(`${VERSION}\n`);
      return EXIT_OK;
    }
    config = loadConfig({ argv, env });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    out.stderr(`shoal: ${err.message}\n`);
    return EXIT_CONFIG;
  }

  const logger = createLogger(config.logLevel);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config, { logger });
  } catch (err) {
    return startFailed(err, logger, out);
  }

  const reload = () => {
    logger.info({ event: 'server.signal', signal: 'SIGHUP' });
    server.reload();
  };
  process.on('SIGHUP', reload);
  // A promise nobody handled is a bug to fix, but not one to take every client's connection for
  // (Node's default is to exit): logged, and the node goes on.
  process.on('unhandledRejection', (err) => logger.error({ event: 'process.unhandled_rejection', err }));
  // SIGTERM / SIGINT, or a drain asked through the admin API (POST /api/v1/drain).
  const signal = await Promise.race([
    nextSignal(['SIGTERM', 'SIGINT']),
    server.closed.then(() => 'admin drain'),
  ]);
  process.off('SIGHUP', reload);
  // The handlers are gone now: a second signal during the drain stops the process at once.
  logger.info({ event: 'server.signal', signal });
  await server.close();
  return EXIT_OK;
}

/** `shoal repair-data DIR`: rebuilds what can be read of a damaged data dir (persistence.dir). */
async function repairData(args: readonly string[], out: CliOutput): Promise<number> {
  if (args.length !== 1 || args[0].startsWith('-')) {
    out.stderr('Usage: shoal repair-data DIR\n');
    return EXIT_CONFIG;
  }
  try {
    await DiskJournal.repair(args[0]);
  } catch (err) {
    out.stderr(`shoal: repair-data ${args[0]}: ${(err as Error).message}\n`);
    return EXIT_FAILURE;
  }
  out.stdout(`repaired ${args[0]}: start the broker with it again\n`);
  return EXIT_OK;
}

function startFailed(err: unknown, logger: Logger, out: CliOutput): number {
  if (err instanceof ConfigError) {
    logger.error({ event: 'config.invalid', reason: err.message });
    out.stderr(`shoal: ${err.message}\n`);
    return EXIT_CONFIG;
  }
  logger.fatal({ event: 'server.start_failed', err }, 'shoal could not start');
  out.stderr(`shoal: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT_FAILURE;
}

function nextSignal(signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handlers = signals.map((signal) => {
      const handler = () => {
        for (const [s, h] of handlers) process.off(s, h);
        resolve(signal);
      };
      process.on(signal, handler);
      return [signal, handler] as const;
    });
  });
}

export function usage(): string {
  const rows = BINDINGS.map((b) => {
    const value = fieldAt(b.path)?.default;
    const choices = b.path === 'logLevel' ? ` (${fieldAt(b.path)?.type.replaceAll("'", '')})` : '';
    return [
      `--${b.flag} <${b.value}>`,
      b.env,
      `default ${value === null ? 'none' : String(value)}${choices}`,
    ];
  });
  rows.push([`--${CONFIG_FILE_BINDING.flag} <file>`, CONFIG_FILE_BINDING.env, 'YAML or JSON config file']);
  rows.push(['-h, --help', '', 'print this help'], ['-v, --version', '', 'print the version']);
  const width = (i: number) => Math.max(...rows.map((r) => r[i].length));
  const lines = rows.map((r) => `  ${r[0].padEnd(width(0))}  ${r[1].padEnd(width(1))}  ${r[2]}`);
  return `Usage: shoal [start] [options]
       shoal passwd FILE USER [--delete]
       shoal repair-data DIR

Runs a Shoal MQTT broker node; SIGHUP rereads its password, ACL, key and certificate files. Flags override
environment variables, which override the config file, which overrides the defaults. A port of 0
disables that listener. \`shoal passwd\` adds, changes or removes a user in a password file.
\`shoal repair-data\` rebuilds what can be read of a damaged data dir (persistence.dir).

Options:
${lines.join('\n')}

Every setting, including TLS and MQTT limits: docs/configuration.md
`;
}
