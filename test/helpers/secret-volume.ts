/** A directory laid out and updated the way the kubelet does a Secret or ConfigMap volume. */
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * A Secret volume as the kubelet's AtomicWriter lays it out: the data in a timestamped directory,
 * `..data` a symlink to it, each key a symlink through `..data`. An update writes a new timestamped
 * directory, points `..data_tmp` at it, renames `..data_tmp` over `..data` (the one atomic step) and
 * removes the old directory. No event in the volume names the key's file.
 */
export class SecretVolume {
  private generation = 0;
  constructor(readonly dir: string) {}

  async write(files: Record<string, string>): Promise<void> {
    const previous = this.generation === 0 ? undefined : this.stamp(this.generation);
    this.generation++;
    const next = path.join(this.dir, this.stamp(this.generation));
    await mkdir(next);
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(next, name), text);
    await symlink(this.stamp(this.generation), path.join(this.dir, '..data_tmp'));
    await rename(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    if (previous === undefined)
      for (const name of Object.keys(files))
        await symlink(path.join('..data', name), path.join(this.dir, name));
    else await rm(path.join(this.dir, previous), { recursive: true });
  }

  private stamp(n: number): string {
    return `..2026_12_08_01_00_0${n}.12345${n}`;
  }
}
