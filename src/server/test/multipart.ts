import { request } from 'node:http';
import { Readable } from 'node:stream';

/** A multipart body by hand, so a test can send part of it, stall or stop. */
export function multipart(fields: Record<string, string | Buffer>): { body: Buffer; type: string } {
  const boundary = `----sv${Date.now()}${Math.random().toString(36).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    const file = typeof value !== 'string';
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file ? `; filename="${name}.nii.gz"` : ''}\r\n${file ? 'Content-Type: application/gzip\r\n' : ''}\r\n`,
      ),
      typeof value === 'string' ? Buffer.from(value) : value,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

/**
 * A chunked POST (no Content-Length) of `total` bytes, sent lazily with backpressure until the
 * server answers: its status (0 when the connection failed first) and how many bytes had gone out.
 */
export function sendChunked(url: string, headers: Record<string, string>, total: number): Promise<{ status: number; sent: number }> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) return this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    const u = new URL(url);
    const req = request({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      headers: { ...headers, 'transfer-encoding': 'chunked' },
    });
    let done = false;
    const finish = (status: number) => {
      if (done) return;
      done = true;
      body.destroy();
      req.destroy();
      resolve({ status, sent });
    };
    req.on('response', (res) => (res.resume(), finish(res.statusCode ?? 0)));
    req.on('error', () => finish(0));
    body.pipe(req);
  });
}
