/**
 * The registry of every stable error `code` Shoal exposes (as fastify's lib/errors.js): each code is
 * declared once, with who meets it, the MQTT 5 reason code, HTTP status or exit code it travels with,
 * and a one-line meaning. The wire protocol's codes are declared in protocol/errors.ts (protocol/
 * imports nothing else of Shoal) and registered here; the other error classes name their code with
 * `satisfies ErrorCode`, so a code that is not registered does not compile. docs/errors.md documents
 * every code; test/unit/docs/errors.test.ts keeps the two equal.
 *
 * Which packet a code (or any other reason) ends a connection with is decided in one place:
 * channel/refusal.ts.
 */
import { PROTOCOL_ERRORS, type ProtocolErrorSpec } from './protocol/errors.js';
import { ReasonCode } from './protocol/reason-codes.js';

/**
 * Who meets the error: an MQTT client (as a reason code), the operator (the process stops at start,
 * or a command fails), an admin API caller (HTTP status and `error.code`), or only the logs.
 */
export type ErrorAudience = 'client' | 'operator' | 'admin' | 'internal';

export interface ErrorSpec {
  readonly audience: ErrorAudience;
  /** The MQTT 5 reason code it is sent with, where one applies. */
  readonly reasonCode?: number;
  /** The HTTP status of the admin API answer that carries it. */
  readonly httpStatus?: number;
  /** The exit code of `shoal start` when it stops the broker (cli.ts: EXIT_FAILURE, EXIT_CONFIG). */
  readonly exitCode?: number;
  /** One line: what went wrong. */
  readonly meaning: string;
}

/** The protocol family, each code met by the client it came from. */
function clientErrors<T extends Record<string, ProtocolErrorSpec>>(
  specs: T,
): { readonly [K in keyof T]: T[K] & { readonly audience: 'client' } } {
  const out: Record<string, ErrorSpec> = {};
  for (const [code, spec] of Object.entries(specs)) out[code] = { audience: 'client', ...spec };
  return out as { readonly [K in keyof T]: T[K] & { readonly audience: 'client' } };
}

export const ERRORS = {
  ...clientErrors(PROTOCOL_ERRORS),

  // ---- start and commands --------------------------------------------------------------------
  CONFIG_INVALID: {
    audience: 'operator',
    exitCode: 2,
    meaning:
      'the configuration (flags, environment, file, or a file it names) is invalid; each problem names its key',
  },
  LISTEN_FAILED: {
    audience: 'operator',
    exitCode: 1,
    meaning: 'a listener could not bind its port; the message names the config key and the address',
  },
  SHOAL_DATA_DIR: {
    audience: 'operator',
    exitCode: 1,
    meaning:
      "the single node's persistence.dir cannot be opened (corrupt, in use by another process, unknown format), or a write to it failed (later writes are refused too); the message names the file and the recovery command `shoal repair-data DIR`",
  },
  PASSWORD_FILE_INVALID: {
    audience: 'operator',
    meaning:
      'a line of a password file is not `user:$scrypt$...` (or `$scram$...`); the message names the line',
  },
  ACL_INVALID: {
    audience: 'operator',
    meaning:
      'an ACL document (auth.aclFile, a JWT acl claim, an HTTP hook answer) is invalid; the message names where',
  },

  // ---- inside the broker ---------------------------------------------------------------------
  SESSION_FENCED: {
    audience: 'internal',
    meaning: 'a session write refused because another connection owns the client id now (takeover)',
  },
  AUTH_HOOK_FAILED: {
    audience: 'internal',
    reasonCode: ReasonCode.ServerUnavailable,
    meaning:
      'the HTTP auth hook did not answer usably (timeout, status, body); CONNECT is refused, a topic denied',
  },
  PROXY_HEADER_INVALID: {
    audience: 'internal',
    meaning: 'a connection on a PROXY protocol listener did not start with a valid PROXY header',
  },
  ADMIN_BAD_REQUEST: {
    audience: 'internal',
    httpStatus: 400,
    meaning: 'an admin request the broker core refuses (bad filter, topic, limit); answered as BAD_REQUEST',
  },

  // ---- the admin API (docs/admin-api.md) -----------------------------------------------------
  BAD_REQUEST: { audience: 'admin', httpStatus: 400, meaning: 'a bad parameter, filter, topic or body' },
  UNAUTHORIZED: { audience: 'admin', httpStatus: 401, meaning: 'no bearer token, or a wrong one' },
  FORBIDDEN: {
    audience: 'admin',
    httpStatus: 403,
    meaning:
      'no admin.token is configured and the request is not from loopback, or a change was asked with the read-only token',
  },
  NOT_FOUND: { audience: 'admin', httpStatus: 404, meaning: 'an unknown endpoint, client or session' },
  METHOD_NOT_ALLOWED: {
    audience: 'admin',
    httpStatus: 405,
    meaning: 'the endpoint exists but not with this method',
  },
  TOO_LARGE: { audience: 'admin', httpStatus: 413, meaning: 'a request body above its limit' },
  UNSUPPORTED_MEDIA_TYPE: {
    audience: 'admin',
    httpStatus: 415,
    meaning: 'a request body that is not application/json',
  },
  NODE_UNAVAILABLE: {
    audience: 'admin',
    httpStatus: 502,
    meaning: 'the node serving the client (or asked for its part) did not answer in time',
  },
  INTERNAL: { audience: 'admin', httpStatus: 500, meaning: 'a bug, logged as admin.error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The codes of admin API answers: they carry an HTTP status. */
export type AdminErrorCode = {
  [K in ErrorCode]: (typeof ERRORS)[K] extends { readonly audience: 'admin' } ? K : never;
}[ErrorCode];

/** The HTTP status an admin API error code is answered with. */
export function httpStatusOf(code: AdminErrorCode): number {
  return ERRORS[code].httpStatus;
}
