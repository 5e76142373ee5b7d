import { describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from './env.js';

describe('parseEnv', () => {
  it('fills the documented defaults', () => {
    const env = parseEnv({});
    expect(env).toMatchObject({
      PORT: 7860,
      HOST: '0.0.0.0',
      DATA_DIR: './data',
      LOG_LEVEL: 'info',
      NODE_ENV: 'development',
      MIGRATE_ON_BOOT: true,
    });
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.SECRET_KEY).toBeUndefined();
  });

  it('treats empty values as unset', () => {
    expect(parseEnv({ PORT: '', DATABASE_URL: '' })).toMatchObject({ PORT: 7860, DATABASE_URL: undefined });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://localhost/x'],
    ['SECRET_KEY', 'short'],
    ['NODE_ENV', 'staging'],
    ['MIGRATE_ON_BOOT', 'maybe'],
  ])('rejects %s=%s with a message naming the variable', (variable, value) => {
    try {
      parseEnv({ [variable]: value });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EnvError);
      expect((err as EnvError).message).toMatch(new RegExp(`^${variable}: `));
      expect((err as EnvError).problems[0]?.variable).toBe(variable);
    }
  });

  it('takes DICOMWEB_URL as the PACS_URL, and refuses two different ones', () => {
    expect(parseEnv({ DICOMWEB_URL: 'http://pacs:8042/dicom-web' }).PACS_URL).toBe('http://pacs:8042/dicom-web');
    expect(() => parseEnv({ DICOMWEB_URL: 'ftp://pacs' })).toThrow(/^DICOMWEB_URL: must be an http\(s\) URL/);
    expect(() => parseEnv({ DICOMWEB_URL: 'http://a/dicom-web', PACS_URL: 'http://b/dicom-web' })).toThrow(/DICOMWEB_URL: and PACS_URL/);
  });

  it('requires SECRET_KEY in production', () => {
    expect(() => parseEnv({ NODE_ENV: 'production' })).toThrow(/SECRET_KEY: is required when NODE_ENV=production/);
    expect(parseEnv({ NODE_ENV: 'production', SECRET_KEY: 'x'.repeat(32) }).SECRET_KEY).toHaveLength(32);
  });

  it('ADMIN_EMAIL and ADMIN_PASSWORD come together, and a bad secret is never echoed', () => {
    expect(() => parseEnv({ ADMIN_EMAIL: 'a@x.org' })).toThrow(/ADMIN_PASSWORD: is required with ADMIN_EMAIL/);
    expect(() => parseEnv({ ADMIN_PASSWORD: 'a long enough secret' })).toThrow(/ADMIN_EMAIL: is required with ADMIN_PASSWORD/);
    let message = '';
    try {
      parseEnv({ ADMIN_EMAIL: 'a@x.org', ADMIN_PASSWORD: 'short1' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/ADMIN_PASSWORD: must be at least 12 characters/);
    expect(message).not.toContain('short1');
    expect(parseEnv({ ADMIN_EMAIL: 'A@x.org', ADMIN_PASSWORD: 'a long enough secret' }).ADMIN_EMAIL).toBe('a@x.org');
  });

  it('accepts a postgres URL', () => {
    const url = 'postgres://postgres@127.0.0.1:5432/strokeview';
    expect(parseEnv({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
  });
});

describe('.env.example', () => {
  it('lists every variable the schema reads, and nothing else', async () => {
    const { readFileSync } = await import('node:fs');
    const { envSchema } = await import('./env.js');
    const text = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    const listed = new Set([...text.matchAll(/^#?\s?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]));
    expect([...listed].sort()).toEqual(Object.keys(envSchema.shape).sort());
  });
});
