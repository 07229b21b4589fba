/**
 * The small status page at `/`: one server-rendered HTML page, no script, no external asset,
 * refreshed by the browser every 5 s. It shows aggregate numbers only (what /metrics shows anyway),
 * never client ids or topics, so it needs no token.
 */
export interface StatusView {
  nodeId: string;
  version: string;
  mode: 'single' | 'cluster';
  ready: boolean;
  draining: boolean;
  uptimeSeconds: number;
  /** Live nodes of the cluster (this one alone on a single node). */
  nodes: string[];
  figures: Array<[label: string, value: number]>;
}

export function renderStatusPage(v: StatusView): string {
  const state = v.draining ? 'draining' : v.ready ? 'ready' : 'not ready';
  const rows = v.figures.map(([label, value]) => `<tr><th>${esc(label)}</th><td>${value}</td></tr>`).join('');
  const nodes = v.nodes.map((n) => `<li${n === v.nodeId ? ' class="self"' : ''}>${esc(n)}</li>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Shoal ${esc(v.nodeId)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}
.state{padding:.1em .5em;border-radius:.3em;background:${v.ready && !v.draining ? '#cfc' : '#fcc'}}
table{border-collapse:collapse}th{text-align:left;font-weight:normal;padding:.2em 1em .2em 0;color:#555}
td{text-align:right;font-variant-numeric:tabular-nums}.self{font-weight:bold}</style></head>
<body><h1>Shoal node ${esc(v.nodeId)} <span class="state">${state}</span></h1>
<p>version ${esc(v.version)} &middot; ${v.mode} mode &middot; up ${formatUptime(v.uptimeSeconds)}</p>
<table>${rows}</table>
<h2>Cluster nodes (${v.nodes.length})</h2><ul>${nodes}</ul>
<p><a href="/metrics">/metrics</a> &middot; <a href="/readyz">/readyz</a> &middot; admin API: /api/v1 (docs/admin-api.md)</p>
</body></html>
`;
}

function formatUptime(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}
