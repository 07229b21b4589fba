import { describe, expect, it } from 'vitest';
import {
  Acl,
  AclError,
  filterCovers,
  filtersIntersect,
  parseAcl,
  parseRules,
  permissionsFrom,
} from '../../../src/auth/acl.js';

const DOC = `
noMatch: deny
defaults:
  - { allow: both, topic: 'clients/%c/#' }
  - { allow: subscribe, topic: 'public/#' }
  - { deny: both, topic: 'public/secret/#' }
anonymous:
  - { allow: publish, topic: 'public/guestbook' }
users:
  alice:
    - { allow: both, topics: ['home/%u/#', 'shared/+/status'] }
    - { deny: publish, topic: 'home/%u/firmware' }
  bob:
    - { allow: subscribe, topic: '#' }
clients:
  dashboard:
    - { allow: subscribe, topic: 'home/+/temperature' }
`;

/** client id, user name, topic or filter, allowed, why */
type Row = [string, string | undefined, string, boolean, string];

describe('ACL document', () => {
  const acl = new Acl(parseAcl(DOC));
  const pub = (clientId: string, user: string | undefined, topic: string) =>
    acl.authorizePublish(clientId, user, topic);
  const sub = (clientId: string, user: string | undefined, filter: string) =>
    acl.authorizeSubscribe(clientId, user, filter);

  it.each<Row>([
    // client, user, topic, allowed, why
    ['c1', 'alice', 'home/alice/lamp', true, '%u substituted'],
    ['c1', 'alice', 'home/bob/lamp', false, "another user's %u"],
    ['c1', 'alice', 'home/alice/firmware', false, 'deny wins over the wider allow'],
    ['c1', 'alice', 'shared/x/status', true, '+ in the pattern'],
    ['c1', 'alice', 'clients/c1/out', true, '%c from defaults'],
    ['c1', 'alice', 'clients/c2/out', false, "another client's %c"],
    ['c1', 'alice', 'public/secret/x', false, 'default deny applies to every user'],
    ['c1', 'alice', 'public/guestbook', false, 'the anonymous section is for anonymous clients only'],
    ['g1', undefined, 'public/guestbook', true, 'anonymous section'],
    ['g1', undefined, 'home/alice/lamp', false, 'no %u for an anonymous client'],
    ['c1', 'carol', 'home/carol/lamp', false, 'no rule for carol: noMatch deny'],
  ])('publish %s/%s to %s → %s (%s)', (clientId, user, topic, allowed) => {
    expect(pub(clientId, user, topic)).toBe(allowed);
  });

  it.each<Row>([
    ['c1', 'alice', 'home/alice/#', true, 'the same pattern'],
    ['c1', 'alice', 'home/alice/+/x', true, 'narrower than the pattern'],
    ['c1', 'alice', 'home/#', false, 'wider than the pattern'],
    ['c1', 'alice', 'home/+/lamp', false, '+ in the filter, a literal in the pattern'],
    ['c1', 'alice', 'shared/+/status', true, '+ covered by +'],
    ['c1', 'alice', 'public/news', true, 'defaults'],
    ['c1', 'alice', 'public/#', false, 'overlaps the denied public/secret/#: deny wins'],
    ['c1', 'alice', 'public/+', false, 'public/+ matches public/secret, which public/secret/# denies'],
    ['c1', 'alice', 'public/news/+', true, 'cannot reach public/secret/...'],
    ['c1', 'bob', '#', false, 'bob may subscribe to # but a deny rule overlaps it'],
    ['c1', 'bob', 'home/#', true, '# covers it'],
    ['c1', 'bob', '$SYS/#', false, '# does not reach $ topics'],
    ['dashboard', 'bob', 'home/alice/temperature', true, 'clients section'],
    ['dashboard', undefined, 'home/x/temperature', true, 'clients section, anonymous'],
    ['dashboard', undefined, 'home/x/humidity', false, 'not in the clients rule'],
    ['c1', 'alice', '$share/g/home/alice/#', true, 'a shared subscription is judged by its filter'],
    ['c1', 'alice', '$share/g/home/#', false, 'the shared filter is too wide'],
  ])('subscribe %s/%s to %s → %s (%s)', (clientId, user, filter, allowed) => {
    expect(sub(clientId, user, filter)).toBe(allowed);
  });

  it('a user name or client id holding + # or / never widens a pattern; a deny rule with one denies all', () => {
    const a = new Acl(
      parseAcl(`
users:
  'a+b': [{ allow: both, topic: 'home/%u/#' }]
  'x/y': [{ allow: both, topic: 'any/#' }, { deny: publish, topic: 'any/%u' }]
defaults:
  - { allow: publish, topic: 'c/%c' }
`),
    );
    expect(a.authorizePublish('c', 'a+b', 'home/a+b/x')).toBe(false);
    expect(a.authorizePublish('c', 'a+b', 'home/zzz/x')).toBe(false);
    expect(a.authorizePublish('c', 'x/y', 'any/thing')).toBe(false);
    expect(a.authorizeSubscribe('c', 'x/y', 'any/thing')).toBe(true);
    expect(a.authorizePublish('#', undefined, 'c/#')).toBe(false);
    expect(a.authorizePublish('ok', undefined, 'c/ok')).toBe(true);
  });

  it('noMatch: allow lets through what no rule names; deny rules still win', () => {
    const a = new Acl(parseAcl(`noMatch: allow\ndefaults: [{ deny: publish, topic: 'locked/#' }]`));
    expect(a.authorizePublish('c', 'u', 'anything')).toBe(true);
    expect(a.authorizePublish('c', 'u', 'locked/x')).toBe(false);
    expect(a.authorizeSubscribe('c', 'u', '#')).toBe(true);
  });

  it('an empty document denies everything', () => {
    const a = new Acl(parseAcl(''));
    expect(a.authorizePublish('c', 'u', 'a')).toBe(false);
    expect(a.authorizeSubscribe('c', 'u', 'a')).toBe(false);
  });

  it('answers are cached per client, and a reload (replace) drops them', () => {
    const a = new Acl(parseAcl(`users: { u: [{ allow: publish, topic: 't/#' }] }`));
    expect(a.authorizePublish('c', 'u', 't/1')).toBe(true);
    const doc = a.document;
    // The cached answer stands while the document does.
    expect(a.authorizePublish('c', 'u', 't/1')).toBe(true);
    a.replace(parseAcl(`users: { u: [{ deny: publish, topic: 't/1' }, { allow: publish, topic: 't/#' }] }`));
    expect(a.document).not.toBe(doc);
    expect(a.authorizePublish('c', 'u', 't/1')).toBe(false);
    expect(a.authorizePublish('c', 'u', 't/2')).toBe(true);
  });

  it('reads JSON too', () => {
    const a = new Acl(parseAcl(JSON.stringify({ defaults: [{ allow: 'both', topic: 'j/#' }] })));
    expect(a.authorizePublish('c', undefined, 'j/x')).toBe(true);
  });

  it.each([
    ['rules: []', 'rules: unknown key'],
    ['noMatch: maybe', 'noMatch: must be allow or deny'],
    ['defaults: {}', 'defaults: must be a list of rules'],
    ['defaults: [{ allow: both }]', 'defaults[0]: needs exactly one of topic or topics'],
    [
      "defaults: [{ allow: both, deny: both, topic: 'a' }]",
      'defaults[0]: needs exactly one of allow or deny',
    ],
    ["defaults: [{ allow: read, topic: 'a' }]", 'defaults[0].allow: must be publish, subscribe or both'],
    [
      "users: { u: [{ allow: both, topic: 'a/#/b' }] }",
      'users.u[0].topic: "a/#/b" is not a valid topic pattern',
    ],
    ["users: { u: [{ allow: both, topic: 'a', qos: 1 }] }", 'users.u[0].qos: unknown key'],
    ['users: []', 'users: must be a map of names to rule lists'],
    [
      'defaults: [{ allow: both, topics: [] }]',
      'defaults[0].topics: must be a non-empty list of topic patterns',
    ],
    ['[1, 2]', 'acl: must be a map'],
    ['a: [', 'acl: not valid YAML or JSON'],
  ])('refuses %s, naming where', (text, message) => {
    expect(() => parseAcl(text)).toThrow(AclError);
    expect(() => parseAcl(text)).toThrow(message);
  });
});

describe('permissions from a rule list (a token claim)', () => {
  it('deny wins and no match denies', () => {
    const p = permissionsFrom(
      parseRules(
        [
          { allow: 'both', topic: 'dev/%u/#' },
          { deny: 'publish', topic: 'dev/%u/ota' },
        ],
        'acl',
      ),
      'c1',
      'u1',
    );
    expect(p.publish('dev/u1/x')).toBe(true);
    expect(p.publish('dev/u1/ota')).toBe(false);
    expect(p.publish('other')).toBe(false);
    expect(p.subscribe('dev/u1/#')).toBe(true);
    expect(p.subscribe('dev/#')).toBe(false);
  });
});

describe('filter relations', () => {
  it.each([
    ['#', 'a/b', true],
    ['#', '#', true],
    ['#', '$SYS/x', false],
    ['$SYS/#', '$SYS/x/#', true],
    ['a/#', 'a', true],
    ['a/#', 'a/#', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b/c', false],
    ['a/b', 'a/+', false],
    ['a/b', 'a/b', true],
    ['+/b', '$x/b', false],
    ['a/+/c', 'a/+/c', true],
    ['a/b/c', 'a/b', false],
  ])('%s covers %s: %s', (pattern, filter, covers) => {
    expect(filterCovers(pattern, filter)).toBe(covers);
  });

  it.each([
    ['#', 'a', true],
    ['a/#', 'a', true],
    ['a/+', 'a/b', true],
    ['a/+', '+/b', true],
    ['a/b', 'a/c', false],
    ['a/b', 'a/b/c', false],
    ['a/+/c', 'a/b/+', true],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS/+', true],
    ['a', 'a/+', false],
  ])('%s and %s intersect: %s', (a, b, meet) => {
    expect(filtersIntersect(a, b)).toBe(meet);
    expect(filtersIntersect(b, a)).toBe(meet);
  });
});
