import { expect, it } from 'vitest';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';

// #17 item 10: unvalidated input reached the database or a decoder and came back as a 500.

describeEachDatabase('hostile input gets a 4xx, never a 500', (current) => {
  it('a NUL (or any control character) in a search, a token name, an idempotency key or a case name is a 400 naming the field', async () => {
    const { app, logs } = makeTestApp({ database: current().handle });
    const b = new TestBrowser(app);
    await b.mutate('auth.register', { email: 'nul@example.org', password: 'correct horse battery' });

    const search = await b.query('cases.list', { search: 'a\u0000b' });
    expect(search.status).toBe(400);
    expect(search.body.error?.message).toMatch(/The search must not contain control characters/);

    const token = await b.mutate('auth.tokens.create', { name: 'x\u0000' });
    expect(token.status).toBe(400);
    expect(token.body.error?.message).toMatch(/The token name must not contain control characters/);

    const job = await b.mutate('jobs.create', { caseId: '00000000-0000-4000-8000-000000000000', idempotencyKey: 'key\u0000-12345' });
    expect(job.status).toBe(400);
    expect(job.body.error?.message).toMatch(/The idempotency key must not contain control characters/);

    const form = new FormData();
    form.set('name', 'bad\u0007name');
    form.set('dwi', new File([new Uint8Array(10)], 'dwi.nii'));
    form.set('adc', new File([new Uint8Array(10)], 'adc.nii'));
    const upload = await b.request('/trpc/cases.upload', { method: 'POST', body: form });
    expect(upload.status).toBe(400);
    expect(JSON.stringify(await upload.json())).toMatch(/The case name must not contain control characters/);

    expect(logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
  });

  it('a broken percent-escape in the path is a 400, not a URIError', async () => {
    const { app, logs } = makeTestApp({ database: current().handle });
    for (const path of ['/trpc/%E0%A4%A', '/api/cases/%E0%A4%A', '/%E0%A4%A']) {
      const res = await app.request(`http://localhost${path}`);
      expect(res.status, path).toBe(400);
      expect(await res.json(), path).toEqual({ error: 'The address has a broken %-escape' });
    }
    expect(logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
  });
});
