/**
 * `bin/shoal.js` for tests: runs the CLI from the TypeScript sources (src/cli.ts only exports
 * `main`; bin/shoal.js runs the built dist/). Used as `node --import tsx test/helpers/shoal-main.ts start ...`.
 */
import { main } from '../../src/cli.js';

// The test process ends its nodes by PID, also from an 'exit' hook; a test worker that crashes
// (e.g. out of memory) runs no hook, so a node also ends itself once its parent is gone.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
}, 500).unref();

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`shoal: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
