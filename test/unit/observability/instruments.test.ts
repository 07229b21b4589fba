import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createInstruments } from '../../../src/observability/metrics.js';

describe('createInstruments', () => {
  it('feeds the histograms and never throws into the data path', async () => {
    const registry = new Registry();
    const i = createInstruments(registry);
    i.redisCommand('xadd', 0.002, false);
    i.redisCommand('xadd', Number.NaN, true);
    i.clusterBatch(true, 17);
    i.clusterBatch(false, Number.POSITIVE_INFINITY);
    i.inboxLag(-0.5); // Redis' clock ahead of ours: counted as 0
    i.inboxLag(Number.NaN);
    i.takeover(0.03);
    const lines = (await registry.metrics()).split('\n');
    expect(lines).toContain('shoal_redis_command_duration_seconds_count{command="xadd"} 1');
    expect(lines).toContain('shoal_redis_command_errors_total{command="xadd"} 1');
    expect(lines).toContain('shoal_cluster_batch_size_count{kind="durable"} 1');
    expect(lines).toContain('shoal_cluster_batch_size_count{kind="volatile"} 0');
    expect(lines).toContain('shoal_cluster_inbox_lag_seconds_bucket{le="0.001"} 1');
    expect(lines).toContain('shoal_takeover_duration_seconds_count 1');
  });
});
