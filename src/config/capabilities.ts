/**
 * What the configuration can ask for but this build cannot run yet. Each check here is temporary
 * and names its issue; when the feature lands, its check is deleted. Nothing else in the code
 * refuses a configured feature.
 */
import type { Config } from './schema.js';

export class UnavailableFeatureError extends Error {
  override readonly name = 'UnavailableFeatureError';
  readonly code = 'FEATURE_UNAVAILABLE';

  constructor(
    /** Stable log event name, e.g. `cluster.unavailable`. */
    readonly event: string,
    message: string,
  ) {
    super(message);
  }
}

/** Throws UnavailableFeatureError when `config` asks for something this build lacks. */
export function assertBuildSupports(config: Config): void {
  // Issue #4: cluster mode over Redis.
  if (config.redis !== null) {
    throw new UnavailableFeatureError(
      'cluster.unavailable',
      'cluster mode (--redis) is not available in this build yet',
    );
  }
}
