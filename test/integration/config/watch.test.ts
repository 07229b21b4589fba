/**
 * watchFile (src/config/watch.ts) on a real file system, for every way a watched file is replaced:
 * written in place, renamed over, and swapped the way the kubelet updates a mounted Secret or
 * ConfigMap (#14: before, the swap went unnoticed and a rotated Secret never reached a running pod).
 * Waits are on the change callback, never on time.
 */
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock.js';
import { type FileWatch, watchFile } from '../../../src/config/watch.js';
import { SecretVolume } from '../../helpers/secret-volume.js';

const dirs: string[] = [];
const watches: FileWatch[] = [];
afterEach(async () => {
  for (const w of watches.splice(0)) w.close();
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shoal-watch-'));
  dirs.push(dir);
  return dir;
}

/** Calls of onChange, each resolving the next `changed()` promise. */
function watched(file: string, pollMs?: number) {
  let calls = 0;
  let wake: (() => void) | undefined;
  const w = watchFile(
    file,
    () => {
      calls++;
      wake?.();
    },
    systemClock,
    { debounceMs: 20, pollMs },
  );
  watches.push(w);
  return {
    get calls() {
      return calls;
    },
    changed: () => new Promise<void>((resolve) => (wake = resolve)),
  };
}

describe('watchFile', () => {
  it('(#14) a Kubernetes Secret volume update (the ..data symlink swapped) is a change of every key in it', async () => {
    const volume = new SecretVolume(await tempDir());
    await volume.write({ passwords: 'alice:1\n', acl: 'v1' });
    const w = watched(path.join(volume.dir, 'passwords'));
    const next = w.changed();
    await volume.write({ passwords: 'alice:2\n', acl: 'v2' });
    await next;
    expect(w.calls).toBe(1);
    const again = w.changed();
    await volume.write({ passwords: 'alice:3\n', acl: 'v3' });
    await again;
    expect(w.calls).toBe(2);
  });

  it('a file written in place and one renamed over are changes; another file in the directory is not', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'acl.yaml');
    await writeFile(file, 'one');
    const w = watched(file);
    let next = w.changed();
    await writeFile(file, 'two, longer');
    await next;
    next = w.changed();
    await writeFile(`${file}.tmp`, 'three');
    await rename(`${file}.tmp`, file);
    await next;
    expect(w.calls).toBe(2);
    // A neighbour changing, then the file itself: only the file's change is reported.
    await writeFile(path.join(dir, 'other'), 'x');
    next = w.changed();
    await writeFile(file, 'four');
    await next;
    expect(w.calls).toBe(3);
  });

  it('a change the directory watch does not report is found by the poll', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'keys.pem');
    await writeFile(file, 'one');
    // The watch is made on a directory that is then replaced: its events stop (as on a file
    // system that reports none), and only the poll can see the new file.
    const w = watched(file, 50);
    await rm(dir, { recursive: true });
    await mkdir(dir);
    const next = w.changed();
    await writeFile(file, 'two');
    await next;
    expect(w.calls).toBeGreaterThanOrEqual(1);
  });
});
