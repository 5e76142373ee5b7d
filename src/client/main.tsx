import { QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ApiUrlContext } from './api-url.js';
import { App } from './App.js';
import './styles.css';
import { makeQueryClient, makeTrpcClient, resolveApiUrl, trpc } from './trpc.js';

// Opening a case directly (a shared link, a reload): fetch the viewer chunk alongside the rest.
if (location.pathname.startsWith('/cases/')) void import('./features/viewer/NiivueCanvas.js');
const apiUrl = await resolveApiUrl();
const queryClient = makeQueryClient();
const trpcClient = makeTrpcClient(apiUrl);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <trpc.Provider client={trpcClient} queryClient={queryClient}>
      <QueryClientProvider client={queryClient}>
        <ApiUrlContext.Provider value={apiUrl}>
          <App />
        </ApiUrlContext.Provider>
      </QueryClientProvider>
    </trpc.Provider>
  </StrictMode>,
);
