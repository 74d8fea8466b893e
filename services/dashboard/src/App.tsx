import { lazy, Suspense, useCallback, useEffect, useState } from 'react';
import { ApiClient, ApiError, describe } from './api';
import { useRoute } from './router';
import { signedInHint } from './config';
import { LoginPage } from './components/LoginPage';
import { HealthBanner, useDaemonHealth } from './components/HealthBanner';
import { TicketsView } from './components/TicketsView';
import { agentBlockedReason } from './tickets';
import type { TerminalTab } from './components/TerminalsView';

// xterm.js is most of the bundle: load it the first time terminals are needed.
const TerminalsView = lazy(() => import('./components/TerminalsView').then((m) => ({ default: m.TerminalsView })));

type Auth =
  | { state: 'checking' }
  | { state: 'anonymous'; message: string | null }
  | { state: 'signed-in'; username: string };

export function App() {
  const [api] = useState(() => new ApiClient());
  const [auth, setAuth] = useState<Auth>(() =>
    signedInHint.get() ? { state: 'checking' } : { state: 'anonymous', message: null },
  );
  const [checkSession] = useState(() => auth.state === 'checking');
  const [route, navigate] = useRoute();
  const [tabs, setTabs] = useState<TerminalTab[]>([]);
  const [activeTab, setActiveTab] = useState<string | null>(null);

  useEffect(() => {
    api.setUnauthorizedHandler(() => {
      signedInHint.set(false);
      setAuth((current) =>
        current.state === 'signed-in'
          ? { state: 'anonymous', message: 'Your session has ended. Please sign in again.' }
          : current,
      );
    });
    if (!checkSession) return undefined;
    let cancelled = false;
    api
      .me()
      .then(({ username }) => !cancelled && setAuth({ state: 'signed-in', username }))
      .catch((error: unknown) => {
        if (cancelled) return;
        const unreachable = !(error instanceof ApiError && error.status === 401);
        if (!unreachable) signedInHint.set(false);
        setAuth({
          state: 'anonymous',
          message: unreachable ? `Cannot check your session: ${describe(error)}` : null,
        });
      });
    return () => {
      cancelled = true;
    };
  }, [api, checkSession]);

  const signedIn = auth.state === 'signed-in';
  useEffect(() => {
    if (auth.state === 'anonymous' && route !== '/login') navigate('/login');
    if (signedIn && route === '/login') navigate('/tickets');
  }, [auth.state, signedIn, route, navigate]);

  const onSignedIn = useCallback((username: string) => {
    setTabs([]);
    setActiveTab(null);
    signedInHint.set(true);
    setAuth({ state: 'signed-in', username });
  }, []);

  const signOut = useCallback(async (everywhere = false) => {
    try {
      await (everywhere ? api.logoutEverywhere() : api.logout());
    } finally {
      signedInHint.set(false);
      setAuth({ state: 'anonymous', message: null });
    }
  }, [api]);

  const openTerminal = useCallback(
    (id: string, title: string) => {
      setTabs((current) => (current.some((t) => t.id === id) ? current : [...current, { id, title }]));
      setActiveTab(id);
      navigate('/terminals');
    },
    [navigate],
  );

  const closeTab = useCallback((id: string) => {
    setTabs((current) => {
      const remaining = current.filter((t) => t.id !== id);
      setActiveTab((active) => (active === id ? (remaining.at(-1)?.id ?? null) : active));
      return remaining;
    });
  }, []);

  const health = useDaemonHealth(api, signedIn);

  if (auth.state === 'checking') {
    return <div className="splash" aria-busy="true">Loading…</div>;
  }
  if (auth.state === 'anonymous') {
    return <LoginPage api={api} message={auth.message} onSignedIn={onSignedIn} />;
  }

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} />
          <span>AI Workflow</span>
        </div>
        <nav className="nav" aria-label="Main">
          <a
            href="/tickets"
            className={route === '/tickets' ? 'active' : ''}
            onClick={(e) => {
              e.preventDefault();
              navigate('/tickets');
            }}
          >
            Tickets
          </a>
          <a
            href="/terminals"
            className={route === '/terminals' ? 'active' : ''}
            onClick={(e) => {
              e.preventDefault();
              navigate('/terminals');
            }}
          >
            Terminals{tabs.length > 0 ? <span className="count">{tabs.length}</span> : null}
          </a>
        </nav>
        <div className="user">
          <span className={`health-dot ${health.problems ? 'bad' : health.checked ? 'good' : ''}`} title={health.problems ? 'Daemon unhealthy' : 'Daemon healthy'} />
          <span className="username" data-testid="username">{auth.username}</span>
          <button type="button" className="btn ghost small" onClick={() => void signOut()}>
            Sign out
          </button>
          <button
            type="button"
            className="btn ghost small"
            title="End this login on every browser and device"
            onClick={() => void signOut(true)}
          >
            Sign out everywhere
          </button>
        </div>
      </header>
      <HealthBanner health={health} />
      <main className="content">
        {route === '/terminals' ? null : <TicketsView api={api} onOpenTerminal={openTerminal} agentBlocked={agentBlockedReason(health.health)} />}
        {route === '/terminals' || tabs.length > 0 ? (
          <Suspense fallback={<p className="muted">Loading terminals…</p>}>
            <TerminalsView
              api={api}
              visible={route === '/terminals'}
              tabs={tabs}
              activeTab={activeTab}
              onOpen={openTerminal}
              onSelect={setActiveTab}
              onClose={closeTab}
            />
          </Suspense>
        ) : null}
      </main>
    </div>
  );
}
