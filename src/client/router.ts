import { useSyncExternalStore } from 'react';

/**
 * The viewer's three screens need no routing library: the path is the state, history.pushState
 * changes it, and a reload or a shared link lands on the same screen (the server answers every
 * client path with index.html).
 */
const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach((l) => l()));

let leaveGuard: (() => boolean) | null = null;

/** A screen with unsaved work asks before the app navigates away (null clears it). */
export function setLeaveGuard(guard: (() => boolean) | null): void {
  leaveGuard = guard;
}

export function navigate(path: string, opts: { replace?: boolean } = {}): void {
  if (leaveGuard && !leaveGuard()) return;
  leaveGuard = null;
  if (opts.replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  listeners.forEach((l) => l());
}

export function usePath(): string {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => location.pathname,
  );
}

/** One query parameter of the current URL (null when absent): `?job=` on a case, `?study=` to go back to. */
export function useSearchParam(name: string): string | null {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => new URLSearchParams(location.search).get(name),
  );
}

export type Route =
  { name: 'cases' } | { name: 'case'; id: string } | { name: 'study'; id: string } | { name: 'sign-in' } | { name: 'not-found' };

export function matchRoute(path: string): Route {
  if (path === '/' || path === '') return { name: 'cases' };
  if (path === '/sign-in') return { name: 'sign-in' };
  const m = /^\/cases\/([^/]+)\/?$/.exec(path);
  if (m) return { name: 'case', id: decodeURIComponent(m[1]!) };
  const st = /^\/studies\/([^/]+)\/?$/.exec(path);
  if (st) return { name: 'study', id: decodeURIComponent(st[1]!) };
  return { name: 'not-found' };
}
