/**
 * `shoal passwd FILE USER [--delete]`: adds a user to a password file, changes their password, or
 * removes them. The password is read twice from the terminal without echo, or as the first line of
 * standard input when that is not a terminal (scripts, tests); it is never printed, nor taken from
 * the command line (where `ps` and shell history would keep it). The file is rewritten atomically
 * (a temporary file renamed over it, mode 0600 for a new file); other lines and comments are kept.
 * A running broker picks the change up by itself (file watch) or on SIGHUP.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { checkUsername, hashPassword, PasswordFileError, parsePasswordFile } from './password-file.js';
import { deriveScramCredentials, formatScram } from './scram.js';

/** Standard input as this command uses it: a stream, maybe a terminal. */
export interface PasswdInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

export interface PasswdIO {
  stdin: PasswdInput;
  stdout(text: string): void;
  stderr(text: string): void;
}

export const PASSWD_USAGE = `Usage: shoal passwd FILE USER [--delete]

Adds USER to the password FILE (created when missing) or changes their password; with --delete
(-D) removes USER. The password is asked twice on a terminal, without echo; otherwise it is the
first line of standard input:  printf '%s\\n' "$PASSWORD" | shoal passwd FILE USER
`;

/** Runs the command; resolves with the exit code (0 done, 1 failed, 2 usage error). */
export async function passwdCommand(args: readonly string[], io: PasswdIO): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { delete: { type: 'boolean', short: 'D' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    io.stderr(`shoal passwd: ${(err as Error).message}\n${PASSWD_USAGE}`);
    return 2;
  }
  if (parsed.values.help === true) {
    io.stdout(PASSWD_USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 2) {
    io.stderr(`shoal passwd: expected FILE and USER\n${PASSWD_USAGE}`);
    return 2;
  }
  const [file, user] = parsed.positionals;
  const fail = (message: string) => {
    io.stderr(`shoal passwd: ${message}\n`);
    return 1;
  };
  const badUser = checkUsername(user);
  if (badUser !== undefined) return fail(badUser);

  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      return fail(`cannot read ${file} (${errCode(err)})`);
  }
  let exists = false;
  if (text !== undefined) {
    try {
      exists = parsePasswordFile(text).has(user);
    } catch (err) {
      if (err instanceof PasswordFileError) return fail(`${file} ${err.message}; not changed`);
      throw err;
    }
  }

  if (parsed.values.delete === true) {
    if (text === undefined || !exists) return fail(`no user ${user} in ${file}`);
    writeAtomically(file, replaceUserLine(text, user, undefined));
    io.stdout(`deleted user ${user} from ${file}\n`);
    return 0;
  }

  let password: string;
  try {
    password = await readPassword(io);
  } catch (err) {
    return fail((err as Error).message);
  }
  if (password.length === 0) return fail('the password is empty');
  // The scrypt hash for password logins, and SCRAM-SHA-256 keys for enhanced authentication.
  const line = `${user}:${await hashPassword(password)}:${formatScram(deriveScramCredentials(password))}`;
  writeAtomically(file, replaceUserLine(text ?? '', user, line));
  io.stdout(`${exists ? 'updated' : 'created'} user ${user} in ${file}\n`);
  return 0;
}

/** The file's text with USER's line replaced by `line` (appended when absent; removed when undefined). */
export function replaceUserLine(text: string, user: string, line: string | undefined): string {
  const lines = text.length === 0 ? [] : text.replace(/\r?\n$/, '').split(/\r?\n/);
  const prefix = `${user}:`;
  const at = lines.findIndex((l) => l.trim().startsWith(prefix));
  if (line === undefined) {
    if (at >= 0) lines.splice(at, 1);
  } else if (at >= 0) lines[at] = line;
  else lines.push(line);
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function writeAtomically(file: string, content: string): void {
  let mode = 0o600;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    // A new file: owner only.
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, content, { mode, flag: 'wx' });
    chmodSync(tmp, mode);
    renameSync(tmp, file);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Never created.
    }
    throw err;
  }
}

async function readPassword(io: PasswdIO): Promise<string> {
  const { stdin } = io;
  if (stdin.isTTY === true && typeof stdin.setRawMode === 'function') {
    const [first, second] = await readHidden(stdin, ['Password: ', 'Repeat password: '], io.stderr);
    if (first !== second) throw new Error('the passwords do not match');
    return first;
  }
  return readFirstLine(stdin);
}

/** The first line of a non-terminal input (without its line break). */
export function readFirstLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const finish = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
    };
    const onData = (chunk: Buffer | string) => {
      data += chunk.toString();
      const nl = data.indexOf('\n');
      if (nl >= 0) {
        finish();
        resolve(data.slice(0, nl).replace(/\r$/, ''));
      } else if (data.length > 65_536) {
        finish();
        reject(new Error('the password line is too long'));
      }
    };
    const onEnd = () => {
      finish();
      if (data.length === 0) reject(new Error('no password on standard input'));
      else resolve(data.replace(/\r$/, ''));
    };
    const onError = (err: Error) => {
      finish();
      reject(err);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** Reads one line per prompt from a terminal in raw mode, echoing nothing. Ctrl-C aborts. */
export function readHidden(
  stdin: PasswdInput,
  prompts: readonly string[],
  write: (text: string) => void,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let value: string[] = [];
    write(prompts[0]);
    stdin.setRawMode?.(true);
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString()) {
        if (ch === '\r' || ch === '\n') {
          write('\n');
          lines.push(value.join(''));
          value = [];
          if (lines.length === prompts.length) {
            done();
            resolve(lines);
            return;
          }
          write(prompts[lines.length]);
        } else if (ch === '\u0003' || (ch === '\u0004' && value.length === 0)) {
          write('\n');
          done();
          reject(new Error('interrupted'));
          return;
        } else if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value.push(ch);
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}
