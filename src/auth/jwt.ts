/**
 * JSON Web Tokens as the CONNECT password, verified with `jose`: HMAC (HS*) with a shared secret,
 * or RS*, PS*, ES*, EdDSA with a public key or a JSON Web Key Set file (the token's `kid` picks the
 * key). Claims: `exp` (required unless configured otherwise), `nbf`, the user name claim (must match
 * the CONNECT user name when both are given; names the client when CONNECT has none), the client id
 * claim (must match when present), and an ACL claim whose rules narrow what the client may do.
 */
import { createPublicKey, createSecretKey, type KeyObject, type webcrypto } from 'node:crypto';
import {
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWTHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import { AclError, parseRules, permissionsFrom } from './acl.js';
import type { TopicPermissions } from './types.js';

export interface JwtKeys {
  /** HMAC secret for HS* tokens. */
  secret?: string;
  /** Public key (from a PEM SPKI key or certificate). */
  publicKey?: KeyObject;
  jwks?: JSONWebKeySet;
}

export interface JwtOptions extends JwtKeys {
  /** Accepted `alg` values; by default HS256 with a secret, RS256 and ES256 with a key or key set. */
  algorithms?: readonly string[];
  usernameClaim: string;
  clientIdClaim: string;
  aclClaim: string;
  requireExpiry: boolean;
  /** Milliseconds since the epoch (the broker's clock). */
  now(): number;
}

export type JwtOutcome =
  | { ok: true; username?: string; permissions?: TopicPermissions }
  | { ok: false; reason: string };

const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** True when `password` has the shape of a signed JWT (three base64url parts, a JSON header). */
export function looksLikeJwt(password: Buffer | undefined): boolean {
  if (password === undefined || password.length < 20 || password.length > 16_384) return false;
  return JWT_SHAPE.test(password.toString('latin1'));
}

/** Reads a PEM public key or certificate. */
export function readPublicKey(pem: Buffer | string): KeyObject {
  return createPublicKey(pem);
}

/** Parses a JWKS file's text; throws with a short reason when it is not one. */
export function parseJwks(text: string): JSONWebKeySet {
  const data = JSON.parse(text) as unknown;
  if (typeof data !== 'object' || data === null || !Array.isArray((data as JSONWebKeySet).keys))
    throw new Error('not a JSON Web Key Set ({"keys": [...]})');
  createLocalJWKSet(data as JSONWebKeySet); // validates the set
  return data as JSONWebKeySet;
}

export function defaultAlgorithms(keys: JwtKeys): string[] {
  const out: string[] = [];
  if (keys.secret !== undefined) out.push('HS256');
  if (keys.publicKey !== undefined || keys.jwks !== undefined) out.push('RS256', 'ES256');
  return out;
}

type GetKey = (
  header: JWTHeaderParameters,
  token: FlattenedJWSInput,
) => KeyObject | Promise<KeyObject | webcrypto.CryptoKey | Uint8Array>;

export class JwtVerifier {
  private getKey!: GetKey;

  constructor(private readonly options: JwtOptions) {
    this.setKeys(options);
  }

  /** Installs new keys (a reload of the key or key set file). */
  setKeys(keys: JwtKeys): void {
    const secret = keys.secret === undefined ? undefined : createSecretKey(Buffer.from(keys.secret));
    const jwks = keys.jwks === undefined ? undefined : createLocalJWKSet(keys.jwks);
    const publicKey = keys.publicKey;
    this.getKey = (header, token) => {
      if (header.alg.startsWith('HS')) {
        if (secret === undefined) throw new Error('no secret for HMAC tokens');
        return secret;
      }
      if (jwks !== undefined && (header.kid !== undefined || publicKey === undefined))
        return jwks(header, token);
      if (publicKey === undefined) throw new Error('no public key for this token');
      return publicKey;
    };
  }

  async verify(token: string, client: { clientId: string; username?: string }): Promise<JwtOutcome> {
    const o = this.options;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header, input) => this.getKey(header, input), {
        algorithms: o.algorithms === undefined ? defaultAlgorithms(o) : [...o.algorithms],
        currentDate: new Date(o.now()),
        requiredClaims: o.requireExpiry ? ['exp'] : [],
      }));
    } catch (err) {
      return { ok: false, reason: failureReason(err) };
    }
    const claimedUser = payload[o.usernameClaim];
    if (claimedUser !== undefined && typeof claimedUser !== 'string')
      return { ok: false, reason: 'token_claim_invalid' };
    if (claimedUser !== undefined && client.username !== undefined && client.username !== claimedUser)
      return { ok: false, reason: 'token_username_mismatch' };
    const claimedClient = payload[o.clientIdClaim];
    if (claimedClient !== undefined && claimedClient !== client.clientId)
      return { ok: false, reason: 'token_client_id_mismatch' };
    const username = claimedUser ?? client.username;
    const acl = payload[o.aclClaim];
    if (acl === undefined) return { ok: true, username };
    try {
      return {
        ok: true,
        username,
        permissions: permissionsFrom(parseRules(acl, o.aclClaim), client.clientId, username),
      };
    } catch (err) {
      if (err instanceof AclError) return { ok: false, reason: 'token_acl_invalid' };
      throw err;
    }
  }
}

/** A stable, secret-free reason for a log line. */
function failureReason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token_expired';
  if (err instanceof errors.JWTClaimValidationFailed) return 'token_claim_invalid';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token_algorithm_not_allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token_signature_invalid';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token_key_unknown';
  return 'token_invalid';
}
