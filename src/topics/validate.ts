/**
 * Topic validation and the reference matcher.
 *
 * Owns the MQTT rules for Topic Names and Topic Filters (MQTT 3.1.1 section 4.7, MQTT 5 sections 4.7
 * and 4.8): what a valid name or filter is, how `$share/{ShareName}/{filter}` is taken apart, and
 * the plain, obviously-correct `topicMatches` that the indexes in this module are tested against.
 * Pure code: no I/O, no imports.
 */

/** Largest encoded length of a Topic Name or Topic Filter, in UTF-8 bytes [MQTT-4.7.3-3]. */
export const MAX_TOPIC_BYTES = 65535;

/** The prefix that marks a Shared Subscription (MQTT 5 section 4.8.2). */
export const SHARE_PREFIX = '$share/';

const SLASH = 0x2f; // '/'
const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'
const DOLLAR = 0x24; // '$'

/** A Shared Subscription taken apart, or a plain filter with `group: null`. */
export interface ParsedSubscription {
  /** The Topic Filter that messages are matched against (without any `$share/{ShareName}/`). */
  filter: string;
  /** The ShareName of a Shared Subscription, or null for a non-shared subscription. */
  group: string | null;
}

/**
 * Scans `s` once, checking the character rules shared by names and filters and the wildcard rules
 * selected by `filter`. Returns false on the first violation.
 *
 * - [MQTT-4.7.3-1] at least one character;
 * - [MQTT-4.7.3-2] no U+0000;
 * - [MQTT-4.7.3-3] at most 65535 bytes once UTF-8 encoded;
 * - [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]) well-formed: a lone UTF-16 surrogate has no UTF-8 encoding;
 * - names: no `+` or `#` [MQTT-4.7.1-1];
 * - filters: `#` alone in the last level [MQTT-4.7.1-2], `+` alone in its level [MQTT-4.7.1-3].
 */
function scan(s: string, filter: boolean): boolean {
  const len = s.length;
  // Every UTF-16 code unit encodes to at least one byte, so this is a safe quick reject.
  if (len === 0 || len > MAX_TOPIC_BYTES) return false;
  let bytes = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      if (c === 0) return false;
      if (c === PLUS) {
        if (!filter) return false;
        if ((i > 0 && s.charCodeAt(i - 1) !== SLASH) || (i + 1 < len && s.charCodeAt(i + 1) !== SLASH)) {
          return false;
        }
      } else if (c === HASH) {
        if (!filter) return false;
        if (i !== len - 1 || (i > 0 && s.charCodeAt(i - 1) !== SLASH)) return false;
      }
      bytes += 1;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return false;
      bytes += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    } else {
      bytes += 3;
    }
  }
  return bytes <= MAX_TOPIC_BYTES;
}

/**
 * True when `topic` may be used as a Topic Name in PUBLISH or a Will: non-empty [MQTT-4.7.3-1], no
 * wildcards [MQTT-4.7.1-1], no U+0000 [MQTT-4.7.3-2], well-formed UTF-16 (so that it has a UTF-8
 * encoding, [MQTT-1.5.4-1]) and at most 65535 UTF-8 bytes [MQTT-4.7.3-3].
 *
 * Control characters and Unicode non-characters are allowed: the spec says they SHOULD NOT be sent,
 * and leaves refusing them to the receiver (MQTT 5 section 1.5.4).
 */
export function isValidTopicName(topic: string): boolean {
  return scan(topic, false);
}

/**
 * True when `filter` may be used as a Topic Filter in SUBSCRIBE or UNSUBSCRIBE: non-empty
 * [MQTT-4.7.3-1], `#` only alone in the last level [MQTT-4.7.1-2], `+` only as a whole level
 * [MQTT-4.7.1-3], no U+0000 [MQTT-4.7.3-2], well-formed, at most 65535 UTF-8 bytes [MQTT-4.7.3-3].
 *
 * A `$share/...` string is checked as a plain filter here; use `parseSubscription` to apply the
 * Shared Subscription rules.
 */
export function isValidTopicFilter(filter: string): boolean {
  return scan(filter, true);
}

/**
 * Takes a subscription's Topic Filter apart.
 *
 * `$share/{ShareName}/{filter}` (MQTT 5 section 4.8.2) gives `{ filter, group: ShareName }` when the
 * ShareName is at least one character [MQTT-4.8.2-1], holds no `/`, `+` or `#` and is followed by `/`
 * and a non-empty valid Topic Filter [MQTT-4.8.2-2]. Anything else not starting with `$share/` is a
 * non-shared subscription: `{ filter: raw, group: null }` when `raw` is a valid Topic Filter.
 * Returns null when invalid. The `$share/` prefix is case-sensitive; `$share` without a slash is an
 * ordinary filter.
 *
 * The whole string, prefix included, is what must fit in 65535 bytes and be free of U+0000.
 */
export function parseSubscription(raw: string): ParsedSubscription | null {
  if (!raw.startsWith(SHARE_PREFIX)) {
    return scan(raw, true) ? { filter: raw, group: null } : null;
  }
  const start = SHARE_PREFIX.length;
  const slash = raw.indexOf('/', start);
  // No '/' after the ShareName, or an empty ShareName [MQTT-4.8.2-1] [MQTT-4.8.2-2].
  if (slash <= start) return null;
  for (let i = start; i < slash; i++) {
    const c = raw.charCodeAt(i);
    if (c === PLUS || c === HASH) return null; // [MQTT-4.8.2-2]
  }
  // The '/' must be followed by a Topic Filter [MQTT-4.8.2-2].
  if (slash === raw.length - 1) return null;
  // With a wildcard-free ShareName, the whole string is a valid filter exactly when the part after
  // the ShareName is; scanning it whole also checks the ShareName's characters and the total length.
  if (!scan(raw, true)) return null;
  return { filter: raw.slice(slash + 1), group: raw.slice(start, slash) };
}

/**
 * The reference matcher: true when Topic Filter `filter` matches Topic Name `topic`.
 *
 * `+` matches exactly one level (possibly empty), `#` matches its parent level and every level below
 * it (`a/#` matches `a`, `a/` and `a/b/c`) (MQTT 4.7.1.2, 4.7.1.3). A filter whose first level is a
 * wildcard does not match a topic starting with `$` [MQTT-4.7.2-1]. Levels compare by exact code
 * units: no normalisation [MQTT-4.7.3-4].
 *
 * Both arguments are assumed valid. Simple rather than fast: the tries are the fast path.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.charCodeAt(0) === DOLLAR && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when `topic` starts with `$` and so is out of reach of leading wildcards [MQTT-4.7.2-1]. */
export function isDollarTopic(topic: string): boolean {
  return topic.charCodeAt(0) === DOLLAR;
}

/** Number of levels in a Topic Name or Filter: separators + 1 (`a` is 1, `/` is 2, `a//b` is 3). */
export function topicLevelCount(topic: string): number {
  let n = 1;
  let i = topic.indexOf('/');
  while (i !== -1) {
    n++;
    i = topic.indexOf('/', i + 1);
  }
  return n;
}

/**
 * Length of `s` in UTF-8 bytes, for checks against configured limits. A lone surrogate counts as the
 * three bytes of U+FFFD, which is what an encoder writes for it.
 */
export function utf8ByteLength(s: string): number {
  const len = s.length;
  let bytes = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
    } else bytes += 3;
  }
  return bytes;
}
