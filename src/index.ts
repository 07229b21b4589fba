/** Shoal as a library: start a broker node from a Config, or load one the way the CLI does. */
export { type AedesHooks, fromAedesHooks } from './auth/aedes.js';
export { hashPassword } from './auth/password-file.js';
export {
  type AuthDecision,
  type AuthHooks,
  type AuthResult,
  allowAll,
  type ConnectInfo,
  type TopicPermissions,
} from './auth/types.js';
export { ConfigError, type ConfigIssue } from './config/errors.js';
export { BINDINGS, type LoadOptions, loadConfig } from './config/load.js';
export {
  type Config,
  defaultConfig,
  LOG_LEVELS,
  type LogLevel,
  type TlsConfig,
  validateConfig,
} from './config/schema.js';
export { type CreateBrokerOptions, createBroker } from './create-broker.js';
export { ERRORS, type ErrorAudience, type ErrorCode, type ErrorSpec } from './errors.js';
export { createLogger, type Logger } from './observability/logger.js';
export type { BrokerStats } from './observability/stats.js';
export {
  type BrokerCore,
  ListenError,
  type RunningServer,
  type ServerDeps,
  type ServerPorts,
  startServer,
} from './server.js';
export { VERSION } from './version.js';
