/**
 * Builds the broker's AuthHooks from the `auth` config section, and owns their files: read at start
 * (a problem is a ConfigError naming the key), reloaded on SIGHUP and when they change (a file that
 * fails to reload keeps its previous content), without touching open connections.
 *
 * Authentication, in order:
 *   1. failure backoff: an address inside its backoff window is refused unchecked (0x9F);
 *   2. a verified TLS client certificate names the client (`tlsIdentity`);
 *   3. no user name and no password: anonymous, allowed unless `required` (else 0x87);
 *   4. a user listed in the password file: the password must match;
 *   5. a password shaped like a JWT, with JWT keys configured: the token must verify;
 *   6. the HTTP hook, when configured (allow, deny, or ignore);
 *   7. otherwise, with any credential source configured: 0x86 (an unknown user costs a hash too).
 * Authorization: the credential's own permissions (JWT or HTTP `acl`), the ACL file and the HTTP
 * hook must all allow; none configured allows all. Hooks passed from code replace the matching
 * config-built hook (`createBroker({ authenticate })`); backoff and failure logs still apply.
 */
import type { Clock } from '../clock.js';
import { ConfigError } from '../config/errors.js';
import type { AuthConfig } from '../config/schema.js';
import { type FileWatch, watchFile } from '../config/watch.js';
import type { Logger } from '../observability/logger.js';
import { ReasonCode } from '../protocol/index.js';
import { Acl, aclFilter } from './acl.js';
import { FailureBackoff } from './backoff.js';
import { readAcl, readJwtKeys, readPasswords, short } from './files.js';
import { HttpAuthHook } from './http-hook.js';
import { JwtVerifier, looksLikeJwt } from './jwt.js';
import { PasswordStore } from './password-file.js';
import { certificateIdentity } from './tls-identity.js';
import {
  type AuthDecision,
  type AuthHooks,
  type AuthResult,
  type ConnectInfo,
  isThenable,
  type TopicPermissions,
} from './types.js';

export interface AuthDeps {
  clock: Clock;
  logger: Logger;
  /** Hooks from code; each replaces the config-built one of the same name. */
  overrides?: Partial<AuthHooks>;
  /** Debounce of file change events (tests shorten it). */
  watchDebounceMs?: number;
}

export interface AuthSystem {
  readonly hooks: AuthHooks;
  /** Rereads every auth file (SIGHUP). A file that fails to load keeps its previous content. */
  reload(): void;
  /** Stops watching files. */
  close(): void;
}

/** The outcome of the config-built chain: a decision, and for a refusal a reason for the log. */
interface Verdict extends AuthResult {
  reason?: string;
  method?: string;
}

type FileKind = 'passwordFile' | 'aclFile' | 'jwt.publicKeyFile' | 'jwt.jwksFile';

export function createAuth(config: AuthConfig, deps: AuthDeps): AuthSystem {
  const { clock, logger } = deps;
  const overrides = deps.overrides ?? {};
  const now = () => clock.now();

  // ---- files ----
  const passwords =
    config.passwordFile === null ? undefined : new PasswordStore(readPasswords(config.passwordFile, 'start'));
  const acl = config.aclFile === null ? undefined : new Acl(readAcl(config.aclFile, 'start'));
  const jwtKeys = readJwtKeys(config.jwt, 'start');
  const jwt =
    jwtKeys === undefined
      ? undefined
      : new JwtVerifier({
          ...jwtKeys,
          algorithms: config.jwt.algorithms?.split(',').map((a) => a.trim()),
          usernameClaim: config.jwt.usernameClaim,
          clientIdClaim: config.jwt.clientIdClaim,
          aclClaim: config.jwt.aclClaim,
          requireExpiry: config.jwt.requireExpiry,
          now,
        });
  const http =
    config.http.url === null
      ? undefined
      : new HttpAuthHook({
          url: config.http.url,
          timeoutMs: config.http.timeoutMs,
          cacheTtlMs: config.http.cacheTtlMs,
          now,
          logger,
        });
  const hasSource = passwords !== undefined || jwt !== undefined || http !== undefined;
  if (
    config.required &&
    overrides.authenticate === undefined &&
    !hasSource &&
    config.tlsIdentity === 'none'
  ) {
    throw ConfigError.at(
      'auth.required',
      'needs a way to authenticate: auth.passwordFile, auth.jwt, auth.http.url or auth.tlsIdentity',
    );
  }

  // ---- authentication ----
  const refuse = (reasonCode: number, reason: string): Verdict => ({ reasonCode, reason });
  const BAD = ReasonCode.BadUserNameOrPassword;

  function chain(info: ConnectInfo): Verdict | Promise<Verdict> {
    if (config.tlsIdentity !== 'none' && info.certificate !== undefined) {
      const name = certificateIdentity(info.certificate, config.tlsIdentity);
      if (name !== undefined) return { reasonCode: 0, username: name, method: 'certificate' };
    }
    const { username, password } = info;
    if (username === undefined && password === undefined) {
      return config.required
        ? refuse(ReasonCode.NotAuthorized, 'anonymous')
        : { reasonCode: 0, method: 'anonymous' };
    }
    if (!hasSource) {
      // Nothing to check credentials against: only a certificate could have identified the client.
      return config.required ? refuse(BAD, 'no_certificate') : { reasonCode: 0, method: 'unchecked' };
    }
    if (passwords !== undefined && username !== undefined && passwords.has(username)) {
      if (password === undefined) return passwords.check(username, '').then(() => refuse(BAD, 'no_password'));
      return passwords
        .check(username, password)
        .then((r) => (r === 'ok' ? { reasonCode: 0, method: 'password_file' } : refuse(BAD, r)));
    }
    if (jwt !== undefined && looksLikeJwt(password)) {
      return jwt
        .verify(password!.toString('latin1'), { clientId: info.clientId, username })
        .then((r) =>
          r.ok
            ? { reasonCode: 0, username: r.username, permissions: r.permissions, method: 'jwt' }
            : refuse(BAD, r.reason),
        );
    }
    if (http !== undefined) {
      return http.authenticate(info).then((r) => {
        if (r.result === 'allow')
          return { reasonCode: 0, username: r.username, permissions: r.permissions, method: 'http' };
        if (r.result === 'deny') return refuse(BAD, 'http_denied');
        return refuse(BAD, 'http_ignored');
      });
    }
    // An unknown user costs what a known one does, so timing does not tell which users exist.
    if (passwords !== undefined)
      return passwords.check(username ?? '', password ?? '').then(() => refuse(BAD, 'unknown_user'));
    return refuse(BAD, 'no_matching_source');
  }

  const hook = overrides.authenticate;
  const authenticateCore: (info: ConnectInfo) => Verdict | Promise<Verdict> =
    hook === undefined
      ? chain
      : (info) => {
          const d = hook(info);
          return isThenable(d) ? Promise.resolve(d).then(fromDecision) : fromDecision(d);
        };

  const backoff = config.failureBackoff.enabled
    ? new FailureBackoff(
        {
          initialDelayMs: config.failureBackoff.initialDelayMs,
          maxDelayMs: config.failureBackoff.maxDelayMs,
        },
        now,
      )
    : undefined;

  function settle(info: ConnectInfo, v: Verdict): AuthDecision {
    if (v.reasonCode === 0) {
      backoff?.succeeded(info.remoteAddress);
      logger.debug({
        event: 'auth.login',
        clientId: info.clientId,
        username: v.username ?? info.username,
        method: v.method,
        remote: info.remoteAddress,
      });
      if (v.username === undefined && v.permissions === undefined) return 0;
      return { reasonCode: 0, username: v.username, permissions: v.permissions };
    }
    backoff?.failed(info.remoteAddress);
    logFailure(info, v.reasonCode, v.reason ?? 'refused');
    return v.reasonCode;
  }

  function logFailure(info: ConnectInfo, reasonCode: number, reason: string): void {
    logger.info({
      event: 'auth.login_failed',
      clientId: info.clientId,
      username: info.username,
      // Never the password: only whether one came, and its length.
      passwordLength: info.password?.length,
      remote: info.remoteAddress,
      transport: info.transport,
      reasonCode,
      reason,
    });
  }

  const authenticate = (info: ConnectInfo): AuthDecision | Promise<AuthDecision> => {
    if (backoff !== undefined) {
      const wait = backoff.blockedFor(info.remoteAddress);
      if (wait > 0) {
        logFailure(info, ReasonCode.ConnectionRateExceeded, 'backoff');
        return ReasonCode.ConnectionRateExceeded;
      }
    }
    const v = authenticateCore(info);
    return isThenable(v) ? v.then((x) => settle(info, x)) : settle(info, v);
  };

  // ---- authorization ----
  const httpAuthorize = http !== undefined && config.http.authorize ? http : undefined;
  const authorizePublish = (
    clientId: string,
    username: string | undefined,
    topic: string,
    permissions?: TopicPermissions,
  ): boolean | Promise<boolean> => {
    if (permissions !== undefined && !permissions.publish(topic)) return false;
    if (acl !== undefined && !acl.authorizePublish(clientId, username, topic)) return false;
    if (httpAuthorize !== undefined) return httpAuthorize.authorize('publish', clientId, username, topic);
    return true;
  };
  const authorizeSubscribe = (
    clientId: string,
    username: string | undefined,
    filter: string,
    permissions?: TopicPermissions,
  ): boolean | Promise<boolean> => {
    if (permissions !== undefined && !permissions.subscribe(aclFilter(filter))) return false;
    if (acl !== undefined && !acl.authorizeSubscribe(clientId, username, filter)) return false;
    if (httpAuthorize !== undefined) return httpAuthorize.authorize('subscribe', clientId, username, filter);
    return true;
  };

  const hooks: AuthHooks = {
    authenticate,
    authorizePublish: overrides.authorizePublish ?? authorizePublish,
    authorizeSubscribe: overrides.authorizeSubscribe ?? authorizeSubscribe,
    v3DeniedPublish: overrides.v3DeniedPublish ?? config.v3DeniedPublish,
  };
  // MQTT 5 enhanced authentication (SCRAM-SHA-256) against the password file's SCRAM fields.
  const scramCredentials =
    overrides.scramCredentials ??
    (passwords === undefined ? undefined : (user: string) => passwords.scram(user));
  if (scramCredentials !== undefined) hooks.scramCredentials = scramCredentials;

  // ---- reloads ----
  const loaders: Partial<Record<FileKind, { file: string; load(): string }>> = {};
  if (passwords !== undefined && config.passwordFile !== null) {
    const file = config.passwordFile;
    loaders.passwordFile = {
      file,
      load() {
        const users = readPasswords(file, 'reload');
        passwords.replace(users);
        return `${users.size} users`;
      },
    };
  }
  if (acl !== undefined && config.aclFile !== null) {
    const file = config.aclFile;
    loaders.aclFile = {
      file,
      load() {
        const doc = readAcl(file, 'reload');
        acl.replace(doc);
        return `${doc.users.size} users, ${doc.clients.size} clients`;
      },
    };
  }
  const reloadKeys = () => {
    const keys = readJwtKeys(config.jwt, 'reload');
    if (keys !== undefined) jwt?.setKeys(keys);
    return 'keys';
  };
  if (config.jwt.publicKeyFile !== null)
    loaders['jwt.publicKeyFile'] = { file: config.jwt.publicKeyFile, load: reloadKeys };
  if (config.jwt.jwksFile !== null) loaders['jwt.jwksFile'] = { file: config.jwt.jwksFile, load: reloadKeys };
  function reloadOne(kind: FileKind): void {
    const loader = loaders[kind];
    if (loader === undefined) return;
    try {
      const summary = loader.load();
      logger.info({ event: 'auth.reloaded', file: loader.file, key: `auth.${kind}`, summary });
    } catch (err) {
      logger.error({
        event: 'auth.reload_failed',
        file: loader.file,
        key: `auth.${kind}`,
        reason: short(err),
      });
    }
  }

  const watches: FileWatch[] = [];
  if (config.watchFiles) {
    for (const kind of Object.keys(loaders) as FileKind[]) {
      const loader = loaders[kind]!;
      watches.push(
        watchFile(loader.file, () => reloadOne(kind), clock, {
          debounceMs: deps.watchDebounceMs,
          onError: (err) =>
            logger.warn({ event: 'auth.watch_failed', file: loader.file, reason: err.message }),
        }),
      );
    }
  }

  return {
    hooks,
    reload() {
      for (const kind of Object.keys(loaders) as FileKind[]) reloadOne(kind);
      http?.clear();
    },
    close() {
      for (const w of watches) w.close();
    },
  };
}

function fromDecision(d: AuthDecision): Verdict {
  if (typeof d === 'number') return d === 0 ? { reasonCode: 0 } : { reasonCode: d, reason: 'hook_refused' };
  return d.reasonCode === 0 ? { ...d } : { ...d, reason: 'hook_refused' };
}
