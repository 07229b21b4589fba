/**
 * Import directions the build enforces (`npm run lint`, so .ci/run): dependencies point inwards
 * (docs/architecture.md "Layers"). A wrong-way import fails the lint step with the rule's name.
 */
const OUTER = '^src/(cli|server|create-broker|index)\\.ts$';

module.exports = {
  forbidden: [
    {
      name: 'protocol-is-pure',
      comment: 'The codec imports nothing of Shoal: bytes in, packets out.',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { path: '^src/', pathNot: '^src/protocol/' },
    },
    {
      name: 'message-is-a-leaf',
      comment: 'Message, Delivery and SubscriptionOptions cross layers: their module imports only the codec.',
      severity: 'error',
      from: { path: '^src/message\\.ts$' },
      to: { path: '^src/', pathNot: '^src/(protocol/|message\\.ts$)' },
    },
    {
      name: 'only-backend-redis-knows-redis',
      comment: 'ioredis is imported in src/backend/redis/ only.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/backend/redis/' },
      to: { path: 'node_modules/(ioredis|@ioredis)/' },
    },
    {
      name: 'only-backend-disk-knows-leveldb',
      comment: 'The embedded store is imported in src/backend/disk/ only.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/backend/disk/' },
      to: { path: 'node_modules/(classic-level|abstract-level)/' },
    },
    {
      name: 'backends-do-not-climb',
      comment:
        'Backends implement the ports of backend/types.ts; they import no broker, session, channel, connection or transport.',
      severity: 'error',
      from: { path: '^src/backend/' },
      to: { path: '^src/(broker|session|channel|connection|transport|auth)/' },
    },
    {
      name: 'channel-does-no-io',
      comment: 'The channel is the MQTT state machine: it imports no transport or connection.',
      severity: 'error',
      from: { path: '^src/channel/' },
      to: { path: '^src/(transport|connection)/' },
    },
    {
      name: 'broker-builds-no-connection',
      comment: 'Connections are built in the composition root (connection/accept.ts), not by the broker.',
      severity: 'error',
      from: { path: '^src/(broker|session|topics)/' },
      to: { path: '^src/(connection|transport)/' },
    },
    {
      name: 'session-below-broker',
      comment: 'Session state knows nothing of the broker or the channel that use it.',
      severity: 'error',
      from: { path: '^src/session/' },
      to: { path: '^src/(broker|channel|connection|transport)/' },
    },
    {
      name: 'topics-are-pure',
      comment: 'Topic validation and tries import only the codec.',
      severity: 'error',
      from: { path: '^src/topics/' },
      to: { path: '^src/', pathNot: '^src/(topics|protocol)/' },
    },
    {
      name: 'logging-and-metrics-in-observability',
      comment: 'pino and prom-client are wired in src/observability/ only.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/observability/' },
      to: { path: 'node_modules/(pino|prom-client)/' },
    },
    {
      name: 'nothing-imports-the-composition-root',
      comment: 'cli.ts, server.ts and the package entry points are imported by nothing inside src.',
      severity: 'error',
      from: { path: '^src/', pathNot: OUTER },
      to: { path: OUTER },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
