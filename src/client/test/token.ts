import { execFileSync } from 'node:child_process';

// Node's own fetch, in a child process: happy-dom's (this test's global) drops the Cookie header,
// as a browser would, and the sign-up's session cookie is Secure, which plain http cannot carry.
const SCRIPT = `
const post = async (proc, body, cookie) => {
  const res = await fetch(process.env.SV_URL + '/trpc/' + proc, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(proc + ': ' + res.status + ' ' + (await res.text()));
  return res;
};
const registered = await post('auth.register', { email: process.env.SV_EMAIL, password: 'correct horse battery staple' });
const cookie = registered.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
const created = await post('auth.tokens.create', { name: 'test' }, cookie);
process.stdout.write((await created.json()).result.data.token);
`;

/** Registers a user on a real server and returns a fresh API token of theirs. */
export function mintToken(url: string, email: string): string {
  return execFileSync(process.execPath, ['--input-type=module', '-e', SCRIPT], {
    env: { PATH: process.env.PATH ?? '', SV_URL: url, SV_EMAIL: email },
    encoding: 'utf8',
  });
}
