import { describe, expect, it } from 'vitest';
import {
  isDollarTopic,
  isValidTopicFilter,
  isValidTopicName,
  MAX_TOPIC_BYTES,
  parseSubscription,
  topicLevelCount,
  topicMatches,
  utf8ByteLength,
} from '../../../src/topics/index.js';

describe('isValidTopicName', () => {
  it('[MQTT-4.7.3-1] must be at least one character long', () => {
    expect(isValidTopicName('')).toBe(false);
    expect(isValidTopicName('a')).toBe(true);
    expect(isValidTopicName('/')).toBe(true);
  });

  it('[MQTT-4.7.1-1] wildcards must not be used within a Topic Name', () => {
    for (const t of ['+', '#', 'a/+', 'a/#', 'a+', 'a#b', 'sport/+/player1', '+/a', '#/']) {
      expect(isValidTopicName(t), t).toBe(false);
    }
  });

  it('[MQTT-4.7.3-2] must not include the null character U+0000', () => {
    expect(isValidTopicName('a\u0000b')).toBe(false);
    expect(isValidTopicName('\u0000')).toBe(false);
    expect(isValidTopicName('a/\u0000')).toBe(false);
  });

  it('[MQTT-4.7.3-3] must not encode to more than 65535 bytes', () => {
    expect(isValidTopicName('a'.repeat(MAX_TOPIC_BYTES))).toBe(true);
    expect(isValidTopicName('a'.repeat(MAX_TOPIC_BYTES + 1))).toBe(false);
    // Length counts UTF-8 bytes, not UTF-16 code units: U+00E9 is 2 bytes, U+20AC 3, U+1F600 4.
    expect(isValidTopicName('\u00e9'.repeat(32767))).toBe(true); // 65534 bytes
    expect(isValidTopicName('\u00e9'.repeat(32768))).toBe(false); // 65536 bytes
    expect(isValidTopicName('\u20ac'.repeat(21845))).toBe(true); // 65535 bytes
    expect(isValidTopicName('\u20ac'.repeat(21846))).toBe(false);
    expect(isValidTopicName('\u{1f600}'.repeat(16383))).toBe(true); // 65532 bytes
    expect(isValidTopicName(`${'\u{1f600}'.repeat(16383)}abcd`)).toBe(false); // 65536 bytes
  });

  it('[MQTT-1.5.4-1] must be well-formed: a lone surrogate has no UTF-8 encoding', () => {
    expect(isValidTopicName('a\ud800')).toBe(false);
    expect(isValidTopicName('\udc00a')).toBe(false);
    expect(isValidTopicName('a\ud800b')).toBe(false);
    expect(isValidTopicName('\ud83d\ude00')).toBe(true);
  });

  it('accepts spaces, $ topics, empty levels and non-ASCII levels (MQTT 4.7.3)', () => {
    for (const t of [
      'Accounts payable',
      '$SYS/broker/load',
      '/finance',
      'a//b',
      'a/',
      '//',
      'k\u00fchl/\u6e29\u5ea6',
    ]) {
      expect(isValidTopicName(t), t).toBe(true);
    }
  });
});

describe('isValidTopicFilter', () => {
  it('[MQTT-4.7.3-1] must be at least one character long', () => {
    expect(isValidTopicFilter('')).toBe(false);
  });

  it('[MQTT-4.7.1-2] # must be the last character and alone in its level', () => {
    const valid = ['#', 'sport/#', 'sport/tennis/player1/#', '/#', '+/#', 'a//#', '$SYS/#'];
    const invalid = [
      'sport/tennis#',
      'sport/tennis/#/ranking',
      '#/',
      '#/a',
      'a#',
      'a/b#',
      '##',
      'a/#/#',
      '#a',
    ];
    for (const f of valid) expect(isValidTopicFilter(f), f).toBe(true);
    for (const f of invalid) expect(isValidTopicFilter(f), f).toBe(false);
  });

  it('[MQTT-4.7.1-3] + must occupy an entire level', () => {
    const valid = ['+', '+/tennis/#', 'sport/+/player1', '+/+', '/+', '+/', 'a/+/+/b', '$SYS/+'];
    const invalid = ['sport+', '+a', 'a+/b', 'a/+b', 'a/b+', '++', 'a/++/b', '+#'];
    for (const f of valid) expect(isValidTopicFilter(f), f).toBe(true);
    for (const f of invalid) expect(isValidTopicFilter(f), f).toBe(false);
  });

  it('[MQTT-4.7.3-2] must not include the null character U+0000', () => {
    expect(isValidTopicFilter('a/\u0000/#')).toBe(false);
  });

  it('[MQTT-4.7.3-3] must not encode to more than 65535 bytes', () => {
    expect(isValidTopicFilter(`${'a'.repeat(MAX_TOPIC_BYTES - 2)}/#`)).toBe(true);
    expect(isValidTopicFilter(`${'a'.repeat(MAX_TOPIC_BYTES - 1)}/#`)).toBe(false);
  });

  it('[MQTT-1.5.4-1] must be well-formed UTF-16 (no lone surrogates)', () => {
    expect(isValidTopicFilter('a/\udfff/+')).toBe(false);
  });

  it('accepts plain names as filters', () => {
    for (const f of ['a', 'a/b/c', '/', 'a//b', 'Accounts payable'])
      expect(isValidTopicFilter(f), f).toBe(true);
  });
});

describe('parseSubscription', () => {
  it('returns a non-shared filter with group null', () => {
    expect(parseSubscription('a/+/#')).toEqual({ filter: 'a/+/#', group: null });
    expect(parseSubscription('$SYS/#')).toEqual({ filter: '$SYS/#', group: null });
    expect(parseSubscription('a/#/b')).toBeNull();
    expect(parseSubscription('')).toBeNull();
  });

  it('(MQTT 5 4.8.2) takes $share/{ShareName}/{filter} apart', () => {
    expect(parseSubscription('$share/g1/a/+/#')).toEqual({ filter: 'a/+/#', group: 'g1' });
    expect(parseSubscription('$share/consumer1/sport/tennis/+')).toEqual({
      filter: 'sport/tennis/+',
      group: 'consumer1',
    });
    expect(parseSubscription('$share/g/#')).toEqual({ filter: '#', group: 'g' });
    expect(parseSubscription('$share/g//')).toEqual({ filter: '/', group: 'g' });
    expect(parseSubscription('$share/g/$SYS/+')).toEqual({ filter: '$SYS/+', group: 'g' });
    expect(parseSubscription('$share/$g/a')).toEqual({ filter: 'a', group: '$g' });
    expect(parseSubscription('$share/g/$share/h/a')).toEqual({ filter: '$share/h/a', group: 'g' });
  });

  it('[MQTT-4.8.2-1] the ShareName must be at least one character long', () => {
    expect(parseSubscription('$share//a')).toBeNull();
    expect(parseSubscription('$share/')).toBeNull();
  });

  it('[MQTT-4.8.2-2] the ShareName must not contain "/", "+" or "#" and must be followed by "/" and a Topic Filter', () => {
    expect(parseSubscription('$share/g+/a')).toBeNull();
    expect(parseSubscription('$share/+/a')).toBeNull();
    expect(parseSubscription('$share/g#/a')).toBeNull();
    expect(parseSubscription('$share/#')).toBeNull();
    expect(parseSubscription('$share/g')).toBeNull(); // no "/" after the ShareName
    expect(parseSubscription('$share/g/')).toBeNull(); // empty Topic Filter
    expect(parseSubscription('$share/g/a/#/b')).toBeNull(); // invalid Topic Filter
    expect(parseSubscription('$share/g/a+')).toBeNull();
  });

  it('[MQTT-4.7.3-2] [MQTT-4.7.3-3] apply to the whole string, ShareName included', () => {
    expect(parseSubscription('$share/g\u0000/a')).toBeNull();
    expect(parseSubscription(`$share/g/${'a'.repeat(MAX_TOPIC_BYTES - 9)}`)).not.toBeNull();
    expect(parseSubscription(`$share/g/${'a'.repeat(MAX_TOPIC_BYTES - 8)}`)).toBeNull();
  });

  it('treats only the exact, case-sensitive "$share/" prefix as shared', () => {
    expect(parseSubscription('$share')).toEqual({ filter: '$share', group: null });
    expect(parseSubscription('$SHARE/g/a')).toEqual({ filter: '$SHARE/g/a', group: null });
    expect(parseSubscription('$shared/g/a')).toEqual({ filter: '$shared/g/a', group: null });
  });
});

describe('topicMatches', () => {
  const table: Array<[string, string, boolean]> = [
    // MQTT 4.7.1.2 multi-level wildcard examples.
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/#', 'sport', true],
    ['#', 'sport/tennis', true],
    ['#', '/', true],
    ['a/#', 'a/', true],
    ['a/#', 'ab', false],
    ['a/b/#', 'a', false],
    // MQTT 4.7.1.3 single-level wildcard examples.
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player2', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['+', 'a', true],
    ['+/tennis/#', 'sport/tennis/player1', true],
    ['+/tennis/#', 'sport/tennis', true],
    ['a/+/c', 'a//c', true],
    // Exact levels, no normalisation [MQTT-4.7.3-4].
    ['ACCOUNTS', 'Accounts', false],
    ['/finance', 'finance', false],
    ['a/b', 'a/b/', false],
    ['caf\u00e9', 'cafe\u0301', false],
    ['a b', 'a b', true],
  ];
  it.each(table)('(MQTT 4.7.1) filter %j vs topic %j -> %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  it('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $', () => {
    expect(topicMatches('#', '$SYS/broker/clients')).toBe(false);
    expect(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients')).toBe(false);
    expect(topicMatches('+', '$')).toBe(false);
    expect(topicMatches('+/#', '$SYS')).toBe(false);
    expect(topicMatches('$SYS/#', '$SYS/monitor/Clients')).toBe(true);
    expect(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients')).toBe(true);
    expect(topicMatches('$SYS/#', '$SYS')).toBe(true);
    // Only the first character counts: a `$` further in is an ordinary character.
    expect(topicMatches('#', 'a/$SYS')).toBe(true);
    expect(topicMatches('+/+', '/$x')).toBe(true);
  });
});

describe('helpers', () => {
  it('topicLevelCount counts separators + 1', () => {
    expect(topicLevelCount('a')).toBe(1);
    expect(topicLevelCount('/')).toBe(2);
    expect(topicLevelCount('a//b')).toBe(3);
    expect(topicLevelCount('a/b/c/')).toBe(4);
    expect(topicLevelCount('')).toBe(1);
  });

  it('utf8ByteLength agrees with Buffer.byteLength', () => {
    for (const s of [
      '',
      'abc',
      '\u00e9',
      '\u20ac',
      '\u{1f600}',
      'a\ud800',
      '\udc00',
      'k\u00fchl/\u6e29\u5ea6',
    ]) {
      expect(utf8ByteLength(s), JSON.stringify(s)).toBe(Buffer.byteLength(s, 'utf8'));
    }
  });

  it('isDollarTopic looks at the first character only', () => {
    expect(isDollarTopic('$SYS/x')).toBe(true);
    expect(isDollarTopic('a/$SYS')).toBe(false);
  });
});
