/**
 * `bin/shoal.js` for tests: runs the CLI from the TypeScript sources (src/cli.ts only exports
 * `main`; bin/shoal.js runs the built dist/). Used as `node --import tsx test/helpers/shoal-main.ts start ...`.
 */
import { main } from '../../src/cli.js';

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`shoal: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
