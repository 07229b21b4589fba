/**
 * The configuration error family. Every problem found while reading flags, environment, the config
 * file or the merged result is a ConfigIssue naming the key path (and, when it came from there, the
 * flag or environment variable); one ConfigError carries all of them so an operator fixes a bad
 * config in one pass. The CLI prints the message and exits with code 2.
 */
import type { ErrorCode } from '../errors.js';

export interface ConfigIssue {
  /** Key path in the config (`mqtt.receiveMaximum`), or the flag / file the problem is about. */
  readonly path: string;
  /** What is wrong, phrased to follow the path: `must be an integer 1..65535`. */
  readonly problem: string;
  /** The flag or environment variable the value came from, when not the file or a default. */
  readonly source?: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID' satisfies ErrorCode;

  constructor(readonly issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('; '));
  }

  static at(path: string, problem: string, source?: string): ConfigError {
    return new ConfigError([{ path, problem, source }]);
  }
}

/** `port (SHOAL_PORT): must be an integer 0..65535, got "abc"` */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.source === undefined ? issue.path : `${issue.path} (${issue.source})`;
  return `${where}: ${issue.problem}`;
}
