/**
 * Small node:http (or https) servers on loopback with a request log, for faking the health
 * URL, Slack webhook, status page, metrics and Cloudflare APIs.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { LOOPBACK, onProcessExit, once, readPem } from './util.js';

export interface RecordedRequest {
  method: string;
  /** Path including the query string, e.g. "/api/v1/status?x=1" */
  path: string;
  /** Path without the query string, e.g. "/api/v1/status" */
  pathname: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Parsed body when it is JSON, else undefined. */
  json?: unknown;
  at: Date;
}

export interface HttpReply {
  status: number;
  headers?: Record<string, string | string[]>;
  /** string/Buffer sent as is; any other value is sent as JSON (content-type set if missing). */
  body?: unknown;
  /** Wait this long before answering (timeouts, slow upstreams). */
  delayMs?: number;
}

export type HttpRoutes = (req: RecordedRequest, body: string) => HttpReply | Promise<HttpReply>;

export interface HttpService {
  /** http(s)://127.0.0.1:PORT (no trailing slash) */
  url: string;
  host: string;
  port: number;
  /** Every request received, in order (clear with `requests.length = 0`). */
  requests: RecordedRequest[];
  /** Swap the handler (e.g. to inject a failure mid-test). */
  setRoutes(routes: HttpRoutes): void;
  /** Idempotent: close the server and destroy open connections. */
  stop(): Promise<void>;
}

export interface StartHttpServiceOptions {
  /** Serve HTTPS with this certificate (PEM contents or paths). */
  tls?: { certPem: string; keyPem: string; caPem?: string };
  /** Fixed port (default: a free one chosen by the OS). */
  port?: number;
}

function send(res: http.ServerResponse, reply: HttpReply): void {
  const headers: Record<string, string | string[]> = { ...(reply.headers ?? {}) };
  let payload: string | Buffer = '';
  if (typeof reply.body === 'string' || Buffer.isBuffer(reply.body)) {
    payload = reply.body;
  } else if (reply.body !== undefined) {
    payload = JSON.stringify(reply.body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json';
    }
  }
  res.writeHead(reply.status, headers);
  res.end(payload);
}

export async function startHttpService(routes: HttpRoutes, opts: StartHttpServiceOptions = {}): Promise<HttpService> {
  let handler = routes;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const parsed = new URL(req.url ?? '/', 'http://localhost');
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        pathname: parsed.pathname,
        query: parsed.searchParams,
        headers: req.headers,
        body,
        at: new Date(),
      };
      if (body) {
        try {
          rec.json = JSON.parse(body);
        } catch {
          /* not JSON */
        }
      }
      requests.push(rec);
      Promise.resolve()
        .then(() => handler(rec, body))
        .then(async (reply) => {
          if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
          if (!res.destroyed) send(res, reply);
        })
        .catch((err: unknown) => {
          if (!res.headersSent) send(res, { status: 500, body: `test handler error: ${String(err)}` });
          else res.destroy();
        });
    });
  };
  const server = opts.tls
    ? https.createServer(
        {
          cert: readPem(opts.tls.certPem),
          key: readPem(opts.tls.keyPem),
          ...(opts.tls.caPem ? { ca: readPem(opts.tls.caPem) } : {}),
        },
        onRequest,
      )
    : http.createServer(onRequest);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, LOOPBACK, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const port = (server.address() as AddressInfo).port;
  const unregister = onProcessExit(() => {
    server.close();
  });
  const stop = once(async () => {
    unregister();
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    await closed;
  });
  return {
    url: `${opts.tls ? 'https' : 'http'}://${LOOPBACK}:${port}`,
    host: LOOPBACK,
    port,
    requests,
    setRoutes(r) {
      handler = r;
    },
    stop,
  };
}

/** Alias kept for callers that think of it as "a server with a handler". */
export const startHttpServer = startHttpService;
