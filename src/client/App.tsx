import { useEffect, useState } from 'react';
import { ErrorBoundary } from './components/ErrorBoundary.js';
import { Account } from './features/auth/Account.js';
import { SignIn } from './features/auth/SignIn.js';
import { CaseList } from './features/cases/CaseList.js';
import { StudyDashboard } from './features/studies/StudyDashboard.js';
import { StudyList } from './features/studies/StudyList.js';
import { CaseView } from './features/viewer/CaseView.js';
import { matchRoute, navigate, usePath } from './router.js';
import { useWake } from './wake.js';

export function App() {
  const route = matchRoute(usePath());
  return (
    <div className="app">
      <header className="bar">
        <a
          className="brand"
          href="/"
          onClick={(e) => {
            e.preventDefault();
            navigate('/');
          }}
        >
          strokeview
        </a>
        <span className="tagline">ischemic-stroke lesion segmentation</span>
        <Account />
      </header>
      <WakeBanner />
      <main>
        <ErrorBoundary>
          {route.name === 'cases' && (
            <>
              <StudyList />
              <CaseList />
            </>
          )}
          {route.name === 'case' && <CaseView id={route.id} key={route.id} />}
          {route.name === 'study' && <StudyDashboard id={route.id} key={route.id} />}
          {route.name === 'sign-in' && <SignIn />}
          {route.name === 'not-found' && (
            <p className="error">
              Page not found. <a href="/">All cases</a>
            </p>
          )}
        </ErrorBoundary>
      </main>
    </div>
  );
}

/** "Waking up the server… 0:23" while requests are being retried; a Retry button after giving up. */
function WakeBanner() {
  const state = useWake();
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (state.since === null) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [state.since]);
  if (state.since === null && !state.gaveUp) return null;
  if (state.gaveUp) {
    return (
      <div className="banner error" role="alert">
        The server did not answer. <button onClick={() => location.reload()}>Retry</button>
      </div>
    );
  }
  const s = Math.max(0, Math.floor((now - state.since!) / 1000));
  return (
    <div className="banner" role="status" data-testid="waking">
      Waking up the server… {Math.floor(s / 60)}:{String(s % 60).padStart(2, '0')}
    </div>
  );
}
