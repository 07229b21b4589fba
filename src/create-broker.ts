/**
 * `createBroker(options)`: a single-node broker started from code, with authentication and
 * authorization hooks (sync or async) and, optionally, settings in the config file's shape.
 *
 *   const broker = await createBroker({
 *     config: { port: 1883, httpPort: 0 },
 *     authenticate: ({ username, password }) => (ok(username, password) ? 0 : 0x86),
 *     authorizePublish: (clientId, username, topic) => topic.startsWith(`${username}/`),
 *   });
 *   ...
 *   await broker.close();
 */
import type { AuthHooks } from './auth/types.js';
import { validateConfig } from './config/schema.js';
import type { Logger } from './observability/logger.js';
import { type RunningServer, startServer } from './server.js';

export interface CreateBrokerOptions extends Partial<AuthHooks> {
  /** Settings as in a config file (`{ port: 1883, auth: { aclFile: 'acl.yaml' } }`); validated. */
  config?: Record<string, unknown>;
  logger?: Logger;
}

export function createBroker(options: CreateBrokerOptions = {}): Promise<RunningServer> {
  const { config, logger, authenticate, authorizePublish, authorizeSubscribe, v3DeniedPublish } = options;
  const auth: Partial<AuthHooks> = {};
  if (authenticate !== undefined) auth.authenticate = authenticate;
  if (authorizePublish !== undefined) auth.authorizePublish = authorizePublish;
  if (authorizeSubscribe !== undefined) auth.authorizeSubscribe = authorizeSubscribe;
  if (v3DeniedPublish !== undefined) auth.v3DeniedPublish = v3DeniedPublish;
  return startServer(validateConfig(config ?? {}), { logger, auth });
}
