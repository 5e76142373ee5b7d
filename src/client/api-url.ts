import { createContext, useContext } from 'react';

/**
 * The API's base URL, for what goes around the tRPC client: uploads with progress, which need
 * XMLHttpRequest (fetch reports no upload progress). Provided once, at the root, from the same
 * value the tRPC client was made with.
 */
export const ApiUrlContext = createContext<string | null>(null);

export function useApiUrl(): string {
  const url = useContext(ApiUrlContext);
  if (url === null) throw new Error('useApiUrl needs an <ApiUrlContext.Provider> above it (main.tsx provides one)');
  return url;
}
