import { useSyncExternalStore } from 'react';

/**
 * "Waking up the server…": set when a request fails in a way the retry policy waits out (a
 * sleeping Space's 502/503/504, a refused connection), cleared by the next success. `gaveUp`
 * when the policy stopped retrying.
 */
export interface WakeState {
  since: number | null;
  gaveUp: boolean;
}

let state: WakeState = { since: null, gaveUp: false };
const listeners = new Set<() => void>();
const emit = (next: WakeState) => {
  state = next;
  for (const l of listeners) l();
};

export const wake = {
  retrying() {
    if (state.since === null || state.gaveUp) emit({ since: state.since ?? Date.now(), gaveUp: false });
  },
  succeeded() {
    if (state.since !== null || state.gaveUp) emit({ since: null, gaveUp: false });
  },
  gaveUp() {
    emit({ since: state.since, gaveUp: true });
  },
};

export function useWake(): WakeState {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => state,
  );
}
