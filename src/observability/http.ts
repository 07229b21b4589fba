/**
 * The operator's HTTP endpoint: /healthz (the process is alive), /readyz (every listener is up, the
 * cluster backend is ready, and the node is not draining), /metrics (Prometheus text), the admin API
 * under /api/v1/ (admin-api.ts) and a small status page at /.
 */
import http from 'node:http';
import type { Registry } from 'prom-client';
import { ADMIN_PREFIX, type AdminApi } from './admin-api.js';
import type { Logger } from './logger.js';
import { renderStatusPage, type StatusView } from './status-page.js';

export interface ObservabilityServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** True when the node takes clients; /readyz answers 200, otherwise 503. */
  ready(): boolean;
  logger?: Logger;
  /** The admin API; absent = /api/v1/ answers 404. */
  admin?: AdminApi;
  /** What the status page at / shows; absent = / answers 404. */
  status?(): Promise<StatusView>;
}

export class ObservabilityServer {
  readonly kind = 'http';
  private readonly server: http.Server;

  constructor(private readonly options: ObservabilityServerOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        options.logger?.error({ event: 'http.error', path: req.url, err }, 'observability request failed');
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
    });
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.options.host, port: this.options.port }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) =>
          this.options.logger?.error({ event: 'http.error', err }, 'observability server error'),
        );
        const address = this.server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : this.options.port);
      });
    });
  }

  /** Stops the server, ending open keep-alive connections (a scrape in progress is cut short). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path.startsWith(ADMIN_PREFIX) && this.options.admin !== undefined) {
      await this.options.admin.handle(req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz':
        send(res, 200, JSON_TYPE, '{"status":"ok"}');
        return;
      case '/readyz':
        if (this.options.ready()) send(res, 200, JSON_TYPE, '{"status":"ready"}');
        else send(res, 503, JSON_TYPE, '{"status":"not ready"}');
        return;
      case '/metrics': {
        const { registry } = this.options;
        send(res, 200, registry.contentType, await registry.metrics());
        return;
      }
      case '/':
        if (this.options.status !== undefined) {
          send(res, 200, 'text/html; charset=utf-8', renderStatusPage(await this.options.status()));
          return;
        }
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
        return;
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  }
}

const JSON_TYPE = 'application/json';

function send(res: http.ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
