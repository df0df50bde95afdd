export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Plain HTTP(S) over the built-in fetch: health URLs, webhooks, status pages. */
export interface HttpClient {
  request(url: string, req?: HttpRequest): Promise<HttpResponse>;
}

export class HttpError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const fetchHttpClient: HttpClient = {
  async request(url, req = {}) {
    const signals = [AbortSignal.timeout(req.timeoutMs ?? 10_000)];
    if (req.signal) signals.push(req.signal);
    try {
      const res = await fetch(url, {
        method: req.method ?? 'GET',
        headers: req.headers,
        body: req.body,
        signal: AbortSignal.any(signals),
        redirect: 'manual',
      });
      const text = await res.text();
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => (headers[k] = v));
      return { status: res.status, headers, text };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') throw new HttpError(`${url}: no answer within ${req.timeoutMs ?? 10_000} ms`, 'ETIMEDOUT');
      if (e.name === 'AbortError') throw err;
      const code = e.cause?.code;
      throw new HttpError(`${url}: ${code ?? e.cause?.message ?? e.message}`, code);
    }
  },
};
