import { type FormEvent, useEffect, useState } from 'react';
import { navigate } from '../../router.js';
import { trpc } from '../../trpc.js';

/** Sign in, register, or continue as a guest. The server's own messages are shown as they come. */
export function SignIn() {
  const [mode, setMode] = useState<'signIn' | 'register'>('signIn');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const utils = trpc.useUtils();
  const info = trpc.system.info.useQuery();
  // Already signed in (a reload of /sign-in, a framed app whose src is /sign-in): to the cases.
  // Switching accounts goes through "Sign out" in the header.
  const me = trpc.auth.me.useQuery();
  useEffect(() => {
    if (me.data) navigate('/', { replace: true });
  }, [me.data]);
  const done = async () => {
    await utils.invalidate();
    navigate('/');
  };
  const signIn = trpc.auth.signIn.useMutation({ onSuccess: done });
  const register = trpc.auth.register.useMutation({ onSuccess: done });
  const guest = trpc.auth.guest.useMutation({ onSuccess: done });
  const active = mode === 'signIn' ? signIn : register;
  const error = active.error ?? guest.error;
  const fieldErrors = (error?.data as { fieldErrors?: Record<string, string[]> } | undefined)?.fieldErrors;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    active.mutate({ email, password });
  };
  return (
    <section className="card narrow">
      <h1>{mode === 'signIn' ? 'Sign in' : 'Create an account'}</h1>
      <form onSubmit={submit}>
        <label>
          Email
          <input type="email" autoComplete="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete={mode === 'signIn' ? 'current-password' : 'new-password'}
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        {error && (
          <p className="error" role="alert">
            {fieldErrors ? Object.values(fieldErrors).flat().join(' ') : error.message}
          </p>
        )}
        <button type="submit" disabled={active.isPending}>
          {mode === 'signIn' ? 'Sign in' : 'Register'}
        </button>
        <button type="button" className="link" onClick={() => setMode(mode === 'signIn' ? 'register' : 'signIn')}>
          {mode === 'signIn' ? 'No account? Register' : 'Have an account? Sign in'}
        </button>
      </form>
      {info.data?.allowGuests && (
        <p>
          <button type="button" onClick={() => guest.mutate()} disabled={guest.isPending}>
            Continue as guest
          </button>
        </p>
      )}
    </section>
  );
}
