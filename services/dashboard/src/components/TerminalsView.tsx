import { useCallback, useRef, useState, type FormEvent } from 'react';
import { describe, type ApiClient } from '../api';
import { relativeTime } from '../tickets';
import type { Session } from '../types';
import { usePolling } from '../usePolling';
import { TerminalPane } from './TerminalPane';
import { VoiceInput } from './VoiceInput';

export interface TerminalTab {
  id: string;
  title: string;
}

interface Props {
  api: ApiClient;
  visible: boolean;
  tabs: TerminalTab[];
  activeTab: string | null;
  onOpen: (id: string, title: string) => void;
  onSelect: (id: string) => void;
  onClose: (id: string) => void;
}

export function TerminalsView({ api, visible, tabs, activeTab, onOpen, onSelect, onClose }: Props) {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState('');
  const [command, setCommand] = useState('');
  const [creating, setCreating] = useState(false);
  const inputs = useRef(new Map<string, (text: string) => boolean>());

  const refresh = useCallback(async () => {
    try {
      setSessions(await api.sessions());
      setError(null);
    } catch (err) {
      setError(`Cannot list sessions: ${describe(err)}`);
    }
  }, [api]);
  usePolling(refresh, 4000, visible);

  const registerInput = useCallback((id: string, send: ((text: string) => boolean) | null) => {
    if (send) inputs.current.set(id, send);
    else inputs.current.delete(id);
  }, []);

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setCreating(true);
    setError(null);
    try {
      const session = await api.createSession({
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(command.trim() ? { command: command.trim() } : {}),
      });
      setName('');
      setCommand('');
      onOpen(session.id, session.name);
      await refresh();
    } catch (err) {
      setError(`Cannot create the session: ${describe(err)}`);
    } finally {
      setCreating(false);
    }
  };

  const kill = async (session: Session) => {
    if (!window.confirm(`Kill session "${session.name}"? Its processes end.`)) return;
    try {
      await api.killSession(session.id);
      onClose(session.id);
      await refresh();
    } catch (err) {
      setError(`Cannot kill ${session.name}: ${describe(err)}`);
    }
  };

  const sendToActive = (text: string): boolean => {
    if (!activeTab) return false;
    return inputs.current.get(activeTab)?.(text) ?? false;
  };

  return (
    <div className="terminals-view" hidden={!visible}>
      <aside className="sessions panel" aria-label="Sessions">
        <h2>
          Sessions <span className="count">{sessions?.length ?? 0}</span>
        </h2>
        <form className="new-session" onSubmit={(e) => void create(e)}>
          <input placeholder="Name (optional)" value={name} onChange={(e) => setName(e.target.value)} aria-label="Session name" />
          <input placeholder="Command (default: shell)" value={command} onChange={(e) => setCommand(e.target.value)} aria-label="Command" />
          <button type="submit" className="btn primary small" disabled={creating}>
            {creating ? 'Creating…' : 'New session'}
          </button>
        </form>
        {error ? <div className="notice error" role="alert">{error}</div> : null}
        {sessions && sessions.length === 0 ? <p className="empty">No sessions.</p> : null}
        <ul className="session-list">
          {(sessions ?? []).map((session) => (
            <li key={session.id} className={session.id === activeTab ? 'current' : ''} data-testid="session-item">
              <button type="button" className="session-open" onClick={() => onOpen(session.id, session.name)} title={session.command ?? ''}>
                <span className={`health-dot ${session.alive ? 'good' : 'bad'}`} />
                <span className="session-name">{session.name}</span>
                <span className="muted small">
                  {session.clients} viewer{session.clients === 1 ? '' : 's'} · {relativeTime(session.created_at)}
                </span>
              </button>
              <button type="button" className="btn ghost small danger-text" onClick={() => void kill(session)} aria-label={`Kill ${session.name}`}>
                Kill
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <section className="terminal-area">
        <div className="tabs" role="tablist">
          {tabs.map((tab) => (
            <div key={tab.id} className={`tab ${tab.id === activeTab ? 'active' : ''}`}>
              <button type="button" role="tab" aria-selected={tab.id === activeTab} onClick={() => onSelect(tab.id)}>
                {tab.title}
              </button>
              <button type="button" className="tab-close" aria-label={`Close ${tab.title}`} onClick={() => onClose(tab.id)}>
                ×
              </button>
            </div>
          ))}
          <div className="spacer" />
          {activeTab ? <VoiceInput api={api} onConfirm={sendToActive} /> : null}
        </div>
        {tabs.length === 0 ? (
          <div className="empty-terminal">
            <p>Open a session from the list, or create one.</p>
          </div>
        ) : null}
        {tabs.map((tab) => (
          <TerminalPane key={tab.id} api={api} sessionId={tab.id} visible={visible && tab.id === activeTab} registerInput={registerInput} />
        ))}
      </section>
    </div>
  );
}
