/**
 * The error registry (src/errors.ts) and its documentation (docs/errors.md) stay equal: every
 * registered code has a row, every row names a registered code, and the reason code, HTTP status
 * and exit code a row states are the registered ones. The error classes carry registered codes.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AclError } from '../../../src/auth/acl.js';
import { PasswordFileError } from '../../../src/auth/password-file.js';
import { FencedError } from '../../../src/backend/types.js';
import { AdminInputError } from '../../../src/broker/inspect.js';
import { EXIT_CONFIG, EXIT_FAILURE } from '../../../src/cli.js';
import { ConfigError } from '../../../src/config/errors.js';
import { ERRORS, type ErrorCode, type ErrorSpec } from '../../../src/errors.js';
import { HttpError } from '../../../src/observability/admin-api.js';
import { PROTOCOL_ERRORS, ProtocolError, type ProtocolErrorCode } from '../../../src/protocol/index.js';
import { ListenError } from '../../../src/server.js';
import { ProxyProtocolError } from '../../../src/transport/proxy-protocol.js';

const read = (name: string) => readFileSync(new URL(`../../../docs/${name}`, import.meta.url), 'utf8');

/** The table rows of `text` whose first cell is a backticked code, as code → the other cells. */
function rows(text: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|(.*)\|\s*$/.exec(line);
    if (m === null) continue;
    expect(found.has(m[1]), `${m[1]} is listed twice`).toBe(false);
    found.set(
      m[1],
      m[2].split('|').map((c) => c.trim()),
    );
  }
  return found;
}

const doc = rows(read('errors.md'));
const registered = Object.keys(ERRORS) as ErrorCode[];
const spec = (code: ErrorCode): ErrorSpec => ERRORS[code];
const hex = (n: number) => `0x${n.toString(16).toUpperCase().padStart(2, '0')}`;

describe('docs/errors.md', () => {
  it('lists every registered code', () => {
    expect(registered.filter((code) => !doc.has(code))).toEqual([]);
  });

  it('lists no code that is not registered', () => {
    expect([...doc.keys()].filter((code) => !(code in ERRORS))).toEqual([]);
  });

  it.each(registered)('%s: the reason code column is the registered one', (code) => {
    const reason = spec(code).reasonCode;
    const cell = doc.get(code)?.[0] ?? '';
    if (reason === undefined) expect(cell).toBe('—');
    else expect(cell.startsWith(`${hex(reason)} `)).toBe(true);
  });

  it.each(registered.filter((code) => spec(code).audience === 'admin'))(
    '%s: the status is the registered one, here and in docs/admin-api.md',
    (code) => {
      const status = spec(code).httpStatus!;
      expect(doc.get(code)?.at(-1)?.startsWith(String(status))).toBe(true);
      expect(read('admin-api.md')).toContain(`| ${status} | \`${code}\` |`);
    },
  );

  it.each(registered.filter((code) => spec(code).exitCode !== undefined))(
    '%s: the exit code is the registered one',
    (code) => {
      expect(doc.get(code)?.at(-1)).toContain(`exits with ${spec(code).exitCode}`);
    },
  );
});

describe('the registry', () => {
  it('gives every entry a one-line meaning', () => {
    for (const code of registered) expect(spec(code).meaning).toMatch(/^[^\n]{10,}$/);
  });

  it('registers every ProtocolError code with its reason code', () => {
    for (const code of Object.keys(PROTOCOL_ERRORS) as ProtocolErrorCode[]) {
      expect(spec(code)).toMatchObject({ audience: 'client', reasonCode: PROTOCOL_ERRORS[code].reasonCode });
      expect(new ProtocolError(code, 'x').reasonCode).toBe(PROTOCOL_ERRORS[code].reasonCode);
    }
  });

  it('states the exit codes cli.ts uses', () => {
    expect(ERRORS.CONFIG_INVALID.exitCode).toBe(EXIT_CONFIG);
    expect(ERRORS.LISTEN_FAILED.exitCode).toBe(EXIT_FAILURE);
  });

  it("names each error class's code", () => {
    const errors: Error[] = [
      ConfigError.at('port', 'must be an integer'),
      new ListenError('port', '0.0.0.0:1883', Object.assign(new Error('busy'), { code: 'EADDRINUSE' })),
      new FencedError(),
      new AdminInputError('bad filter'),
      new AclError('acl', 'unknown key'),
      new PasswordFileError(1, 'too many fields'),
      new ProxyProtocolError('not a PROXY protocol header'),
      new HttpError('NOT_FOUND', 'no such client'),
    ];
    for (const err of errors) expect(ERRORS).toHaveProperty((err as Error & { code: string }).code);
    expect(new HttpError('NOT_FOUND', 'no such client').status).toBe(404);
  });
});
