import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A missing tool (redis-server, haproxy, mosquitto clients...) stops the suite, naming it.
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // Integration and cluster suites own ports and child processes; two workers fit 2 cores.
    maxWorkers: 2,
  },
});
