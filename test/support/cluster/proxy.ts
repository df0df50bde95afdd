/**
 * A pass-through HTTPS proxy in front of the real API server, for what only a transport can do:
 * answer with a 429/500 burst, reset the connection, answer slowly or never. It also records every
 * request the tool sends (method, path, dryRun, watch, the server's status), so a test can assert
 * what was asked and that a dry run wrote nothing. Everything else is the real server's answer:
 * the proxy authenticates upstream with its user's client certificate and relays bytes as they come
 * (watches stream; exec and port-forward upgrades are spliced).
 */
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ControlPlaneInfo } from './control-plane.js';

/** One request as the proxy saw it. */
export interface RecordedRequest {
  method: string;
  /** URL path without the query string. */
  path: string;
  query: Record<string, string>;
  contentType?: string;
  /** The answer's status; 0 while pending, hung or reset. */
  status: number;
  dryRun: boolean;
  watch: boolean;
  /** Parsed JSON request body (writes only). */
  body?: unknown;
}

/** An injected transport fault, matched in insertion order. */
export interface Fault {
  method?: string;
  /** Exact path, or a RegExp tested against the path (no query string). */
  path: string | RegExp;
  /** Query parameters that must all be present with these values (e.g. { watch: 'true' }). */
  query?: Record<string, string>;
  /** How many matching requests it affects (default 1; Infinity for all). */
  times?: number;
  /** Answer with this status (default 500) and a Status body, without asking the server. */
  status?: number;
  message?: string;
  /** Never answer (until the proxy closes). */
  hang?: boolean;
  /** Wait this long first; with no status, the request then goes to the server as usual. */
  delayMs?: number;
  /** Destroy the connection instead of answering. */
  reset?: boolean;
}

export interface ClientIdentity {
  cert: string;
  key: string;
}

/** Reads the client certificate and key out of a kubeconfig written by mintUserKubeconfig. */
export function identityFromKubeconfig(path: string): ClientIdentity {
  const kc = parseYaml(readFileSync(path, 'utf8')) as { users: Array<{ user: Record<string, string> }> };
  const u = kc.users[0]!.user;
  return { cert: Buffer.from(u['client-certificate-data']!, 'base64').toString(), key: Buffer.from(u['client-key-data']!, 'base64').toString() };
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export interface FaultProxy {
  url: string;
  requests: RecordedRequest[];
  /** Successful (2xx) writes that were not dry runs. */
  mutations(): RecordedRequest[];
  faults: { add(f: Fault): void; clear(): void };
  /** TCP connections the tool opened to the proxy so far (each costs a TLS handshake). */
  connections(): number;
  close(): Promise<void>;
}

export async function startFaultProxy(info: ControlPlaneInfo, who: ClientIdentity): Promise<FaultProxy> {
  const upstream = new URL(info.server);
  const ca = readFileSync(info.caFile);
  const serving = { cert: readFileSync(join(info.dir, 'pki', 'apiserver.crt')), key: readFileSync(join(info.dir, 'pki', 'apiserver.key')) };
  const requests: RecordedRequest[] = [];
  const faults: Array<Fault & { remaining: number }> = [];
  const hung = new Set<ServerResponse>();
  const sockets = new Set<Socket>();

  const match = (method: string, path: string, query: URLSearchParams) => {
    const f = faults.find(
      (x) =>
        x.remaining > 0 &&
        (!x.method || x.method === method) &&
        (typeof x.path === 'string' ? x.path === path : x.path.test(path)) &&
        Object.entries(x.query ?? {}).every(([k, v]) => query.get(k) === v),
    );
    if (f) f.remaining -= 1;
    return f;
  };

  const forwardHeaders = (req: IncomingMessage) => {
    const headers = { ...req.headers };
    delete headers.authorization;
    headers.host = upstream.host;
    return headers;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://proxy');
    const method = req.method ?? 'GET';
    const rec: RecordedRequest = {
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers['content-type']?.split(';')[0],
      status: 0,
      dryRun: url.searchParams.get('dryRun') === 'All',
      watch: url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1',
    };
    requests.push(rec);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (body.length > 0 && method !== 'GET') {
      try {
        rec.body = JSON.parse(body.toString('utf8'));
      } catch {
        /* not JSON */
      }
    }
    const fault = match(method, url.pathname, url.searchParams);
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.reset) {
      req.socket.destroy();
      return;
    }
    if (fault?.hang) {
      hung.add(res);
      return;
    }
    if (fault && (fault.status !== undefined || !fault.delayMs)) {
      const status = fault.status ?? 500;
      rec.status = status;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: fault.message ?? 'injected fault',
          reason: REASONS[status] ?? 'InternalError',
          code: status,
        }),
      );
      return;
    }
    const up = httpsRequest(
      { host: upstream.hostname, port: upstream.port, method, path: req.url, headers: forwardHeaders(req), ca, cert: who.cert, key: who.key, agent: false },
      (ures) => {
        rec.status = ures.statusCode ?? 0;
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        // A watch's headers come before its first event: a client must not wait for one to see them.
        res.flushHeaders();
        ures.pipe(res);
        res.on('close', () => ures.destroy());
      },
    );
    up.on('error', (err) => {
      if (!res.headersSent) {
        rec.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain' });
      }
      res.end(`proxy: ${err.message}`);
    });
    res.on('close', () => up.destroy());
    up.end(body);
  };

  const server: Server = createServer({ ...serving }, (req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(`proxy: ${err.message}`);
    });
  });
  let opened = 0;
  server.on('connection', (s: Socket) => {
    opened++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // exec, attach and port-forward: splice the client's socket onto one to the server.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'https://proxy');
    requests.push({ method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), status: 101, dryRun: false, watch: false });
    const up = tlsConnect(
      {
        host: upstream.hostname,
        port: Number(upstream.port),
        ca,
        cert: who.cert,
        key: who.key,
        servername: upstream.hostname === '127.0.0.1' ? undefined : upstream.hostname,
      },
      () => {
        const headers = forwardHeaders(req);
        const lines = [
          `${req.method} ${req.url} HTTP/1.1`,
          ...Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : v === undefined ? [] : [`${k}: ${v}`])),
        ];
        up.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length) up.write(head);
        up.pipe(socket);
        socket.pipe(up);
      },
    );
    const end = () => {
      up.destroy();
      socket.destroy();
    };
    up.on('error', end);
    socket.on('error', end);
    up.on('close', end);
    socket.on('close', end);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    mutations: () => requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && !r.dryRun && r.status >= 200 && r.status < 300),
    faults: {
      add: (f) => faults.push({ ...f, remaining: f.times ?? 1 }),
      clear: () => void (faults.length = 0),
    },
    connections: () => opened,
    async close() {
      for (const r of hung) r.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
