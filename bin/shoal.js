#!/usr/bin/env node
import { main } from '../dist/cli.js';

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`shoal: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
