import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';

describe('createLogger', () => {
  it('writes JSON lines with the event name and redacts passwords', () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger('info', { write: (s: string) => lines.push(JSON.parse(s)) });
    logger.info({
      event: 'client.connected',
      password: 'hunter2',
      auth: { username: 'u', password: 'hunter2' },
    });
    logger.debug({ event: 'below.level' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      event: 'client.connected',
      password: '[redacted]',
      auth: { username: 'u', password: '[redacted]' },
    });
    expect(typeof lines[0].time).toBe('string');
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });
});

describe('createLogger redaction of tokens', () => {
  it('redacts token and authorization fields (admin token, bearer headers)', () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (s: string) => lines.push(s) });
    logger.info({
      event: 'x',
      token: 'sekrit-token-123',
      headers: { authorization: 'Bearer sekrit-token-123' },
    });
    expect(lines.join('')).not.toContain('sekrit');
    expect(JSON.parse(lines[0])).toMatchObject({
      token: '[redacted]',
      headers: { authorization: '[redacted]' },
    });
  });
});
