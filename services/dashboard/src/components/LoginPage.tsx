import { useState, type FormEvent } from 'react';
import { ApiError, describe, type ApiClient } from '../api';

interface Props {
  api: ApiClient;
  message: string | null;
  onSignedIn: (username: string) => void;
}

export function LoginPage({ api, message, onSignedIn }: Props) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.login(username, password);
      const me = await api.me().catch(() => ({ username }));
      onSignedIn(me.username);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? 'Wrong username or password.'
          : `Sign-in failed: ${describe(err)}`,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="login-page">
      <form className="login-card" onSubmit={(e) => void submit(e)} aria-label="Sign in">
        <div className="brand large">
          <img src="/favicon.svg" alt="" width={32} height={32} />
          <span>AI Workflow</span>
        </div>
        <p className="muted">Sign in to manage tickets and terminals.</p>
        {message && !error ? <div className="notice info">{message}</div> : null}
        {error ? (
          <div className="notice error" role="alert">
            {error}
          </div>
        ) : null}
        <label>
          Username
          <input
            name="username"
            autoComplete="username"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            required
            autoFocus
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete="current-password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        <button type="submit" className="btn primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
