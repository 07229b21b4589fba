/**
 * The Lua files (src/backend/redis/lua/) and the wrapper that loads them (scripts.ts) agree: every
 * script file has a wrapper entry and every entry a file, every fragment in include/ is included
 * somewhere, every constant the wrapper offers is used, nothing is left unresolved, and the commands
 * clients are made with are the entries' scripts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONSTANTS, LUA_DIR, SCRIPT_COMMANDS, scripts } from '../../../src/backend/redis/scripts.js';

const dir = fileURLToPath(LUA_DIR);
const onDisk = (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.lua')).sort();
const entries = Object.values(scripts);

describe('Lua files and the wrapper', () => {
  it('every script file in lua/ is a wrapper entry, and every entry has its own file', () => {
    const scriptFiles = onDisk.filter((f) => !f.startsWith('include/'));
    expect(entries.map((s) => s.file).sort()).toEqual(scriptFiles);
  });

  it('every fragment in lua/include/ is included by some script', () => {
    const included = new Set(entries.flatMap((s) => s.includes));
    expect([...included].sort()).toEqual(onDisk.filter((f) => f.startsWith('include/')));
  });

  it('every constant is used by some script, and no include or placeholder is left unresolved', () => {
    const sources = onDisk.map((f) => readFileSync(`${dir}/${f}`, 'utf8')).join('\n');
    for (const name of Object.keys(CONSTANTS)) expect(sources, name).toContain(`{{${name}}}`);
    for (const s of entries) {
      expect(s.lua, s.file).not.toMatch(/--! include|\{\{/);
    }
  });

  it('every script file opens with a header naming its KEYS, ARGV and reply', () => {
    for (const s of entries) {
      const header = readFileSync(`${dir}/${s.file}`, 'utf8').split('\n');
      const comments = header.slice(
        0,
        header.findIndex((l) => !l.startsWith('--') || l.startsWith('--!')),
      );
      const text = comments.join('\n');
      expect(text, s.file).toMatch(/^-- KEYS: /m);
      expect(text, s.file).toMatch(/^-- ARGV: /m);
      expect(text, s.file).toMatch(/^-- Returns /m);
    }
  });

  it('the commands clients are made with (connect.ts) are the entries, one per key count each takes', () => {
    const names = Object.keys(SCRIPT_COMMANDS);
    for (const s of entries) {
      const own = names.filter((n) => n.startsWith(`shoal:${s.file.replace(/\.lua$/, '')}/`));
      expect(own.length, s.file).toBeGreaterThan(0);
      for (const n of own) {
        expect(SCRIPT_COMMANDS[n].lua, n).toBe(s.lua);
        expect(n.endsWith(`/${SCRIPT_COMMANDS[n].numberOfKeys}`), n).toBe(true);
      }
    }
    expect(new Set(Object.values(SCRIPT_COMMANDS).map((c) => c.lua)).size).toBe(entries.length);
  });

  it('scripts differ: no two entries run the same text', () => {
    expect(new Set(entries.map((s) => s.sha)).size).toBe(entries.length);
  });
});
