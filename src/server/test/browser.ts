import type { Hono } from 'hono';

export interface CallResult<T = unknown> {
  status: number;
  headers: Headers;
  body: {
    result?: { data: T };
    error?: { message: string; data: { code: string; httpStatus: number; fieldErrors?: Record<string, string[]> } };
  };
  data: T;
  setCookies: string[];
}

/**
 * Calls tRPC over real HTTP (`app.request`) the way a browser on our page would: it keeps the
 * cookies the server sets and sends them back, and marks its requests same-origin.
 */
export class TestBrowser {
  readonly cookies = new Map<string, string>();
  /**
   * `app`: requests go through `app.request`; a URL string (a server listening on a socket, see
   * test/live.ts): requests go over the network with fetch.
   */
  constructor(
    private readonly app: Hono | string,
    private readonly opts: { base?: string; headers?: Record<string, string> } = {},
  ) {}

  get base(): string {
    return this.opts.base ?? (typeof this.app === 'string' ? this.app : 'http://localhost');
  }

  cookieHeader(): string | undefined {
    if (this.cookies.size === 0) return undefined;
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(path: string, init: Omit<RequestInit, 'headers'> & { headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { 'sec-fetch-site': 'same-origin', ...this.opts.headers, ...init.headers };
    const cookie = this.cookieHeader();
    if (cookie && !headers.cookie) headers.cookie = cookie;
    const res =
      typeof this.app === 'string'
        ? await fetch(`${this.base}${path}`, { ...init, headers, redirect: 'manual' })
        : await this.app.request(`${this.base}${path}`, { ...init, headers });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async query<T = unknown>(proc: string, input?: unknown, headers: Record<string, string> = {}): Promise<CallResult<T>> {
    const qs = input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`;
    return this.#wrap<T>(await this.request(`/trpc/${proc}${qs}`, { method: 'GET', headers }));
  }

  async mutate<T = unknown>(proc: string, input?: unknown, headers: Record<string, string> = {}): Promise<CallResult<T>> {
    return this.#wrap<T>(
      await this.request(`/trpc/${proc}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: input === undefined ? undefined : JSON.stringify(input),
      }),
    );
  }

  /** A multipart mutation (tRPC v11 FormData input), as a browser form upload. */
  async upload<T = unknown>(proc: string, form: FormData, headers: Record<string, string> = {}): Promise<CallResult<T>> {
    return this.#wrap<T>(await this.request(`/trpc/${proc}`, { method: 'POST', body: form, headers }));
  }

  async #wrap<T>(res: Response): Promise<CallResult<T>> {
    const text = await res.text();
    let body: CallResult<T>['body'] = {};
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: { message: text, data: { code: 'NOT_JSON', httpStatus: res.status } } };
    }
    return {
      status: res.status,
      headers: res.headers,
      body,
      data: body.result?.data as T,
      setCookies: res.headers.getSetCookie(),
    };
  }
}
