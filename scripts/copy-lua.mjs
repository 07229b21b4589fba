// After tsc: the Redis Lua scripts go beside the compiled wrapper that reads them at load
// (src/backend/redis/lua -> dist/backend/redis/lua). The old copy goes first: no stale script stays.
import { cpSync, rmSync } from 'node:fs';

const from = new URL('../src/backend/redis/lua/', import.meta.url);
const to = new URL('../dist/backend/redis/lua/', import.meta.url);
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
