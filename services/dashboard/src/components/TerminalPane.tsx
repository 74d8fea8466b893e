import { useEffect, useRef, useState } from 'react';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { describe, type ApiClient } from '../api';
import { sessionSocketUrl, TerminalConnection, type ConnectionStatus } from '../terminalConnection';

interface Props {
  api: ApiClient;
  sessionId: string;
  visible: boolean;
  /** Lets the parent type into this terminal (voice input); null on unmount. */
  registerInput: (sessionId: string, send: ((text: string) => boolean) | null) => void;
}

/** One xterm.js terminal attached to `/ws/sessions/{id}`, with its toolbar. */
export function TerminalPane({ api, sessionId, visible, registerInput }: Props) {
  const hostRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);
  const connRef = useRef<TerminalConnection | null>(null);
  const fitRef = useRef<FitAddon | null>(null);
  const [status, setStatus] = useState<ConnectionStatus>({ kind: 'connecting' });
  const [readOnly, setReadOnly] = useState(false);
  const readOnlyRef = useRef(readOnly);
  const [note, setNote] = useState<string | null>(null);

  useEffect(() => {
    const host = hostRef.current;
    if (!host) return undefined;
    const term = new Terminal({
      cursorBlink: true,
      convertEol: false,
      fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      theme: { background: '#0f172a', foreground: '#e2e8f0', cursor: '#93c5fd', selectionBackground: '#334155' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host);
    const conn = new TerminalConnection({
      url: sessionSocketUrl(window.location, sessionId, readOnlyRef.current),
      onOutput: (bytes) => term.write(bytes),
      onStatus: setStatus,
      onNotice: (message) => setNote(message),
      checkBeforeRetry: async () => {
        try {
          const sessions = await api.sessions();
          const session = sessions.find((s) => s.id === sessionId);
          return session && session.alive ? null : 'The session has ended.';
        } catch {
          return null;
        }
      },
    });
    const dataSub = term.onData((data) => {
      if (!readOnlyRef.current) conn.sendInput(data);
    });
    const resizeSub = term.onResize(({ cols, rows }) => conn.resize(cols, rows));
    const refit = () => {
      if (host.clientWidth > 0 && host.clientHeight > 0) {
        try {
          fit.fit();
        } catch {
          // not laid out yet; the next resize event fits it
        }
      }
    };
    const observer = new ResizeObserver(refit);
    observer.observe(host);
    refit();
    conn.resize(term.cols, term.rows);
    conn.connect();
    termRef.current = term;
    connRef.current = conn;
    fitRef.current = fit;
    registerInput(sessionId, (text) => !readOnlyRef.current && conn.sendInput(text));
    return () => {
      registerInput(sessionId, null);
      observer.disconnect();
      dataSub.dispose();
      resizeSub.dispose();
      conn.close();
      term.dispose();
      termRef.current = null;
      connRef.current = null;
      fitRef.current = null;
    };
  }, [api, sessionId, registerInput]);

  useEffect(() => {
    if (!visible) return;
    try {
      fitRef.current?.fit();
    } catch {
      // hidden terminals have no size; fitted when shown
    }
    termRef.current?.focus();
  }, [visible]);

  const toggleReadOnly = () => {
    const next = !readOnly;
    readOnlyRef.current = next;
    setReadOnly(next);
    if (termRef.current) termRef.current.options.disableStdin = next;
    connRef.current?.switchUrl(sessionSocketUrl(window.location, sessionId, next));
  };

  const flash = (text: string) => {
    setNote(text);
    window.setTimeout(() => setNote((current) => (current === text ? null : current)), 2500);
  };

  const copy = async () => {
    const selection = termRef.current?.getSelection() ?? '';
    if (!selection) {
      flash('Select text in the terminal first.');
      return;
    }
    try {
      await navigator.clipboard.writeText(selection);
      flash('Copied.');
    } catch (error) {
      flash(`Copy failed: ${describe(error)}`);
    }
  };

  const paste = async () => {
    if (readOnly) {
      flash('Read-only: turn it off to paste.');
      return;
    }
    try {
      const text = await navigator.clipboard.readText();
      if (text) termRef.current?.paste(text);
      termRef.current?.focus();
    } catch (error) {
      flash(`Paste failed: ${describe(error)} (Ctrl+Shift+V also pastes).`);
    }
  };

  return (
    <div className="terminal-pane" hidden={!visible} data-testid="terminal-pane" data-session-id={sessionId}>
      <div className="terminal-toolbar">
        <ConnectionBadge status={status} />
        {note ? <span className="muted small" role="status">{note}</span> : null}
        <div className="spacer" />
        <label className="toggle">
          <input type="checkbox" checked={readOnly} onChange={toggleReadOnly} data-testid="read-only-toggle" />
          Read-only
        </label>
        <button type="button" className="btn small" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" className="btn small" onClick={() => void paste()} disabled={readOnly}>
          Paste
        </button>
      </div>
      <div className="terminal-host" ref={hostRef} data-testid="terminal-host" />
    </div>
  );
}

function ConnectionBadge({ status }: { status: ConnectionStatus }) {
  switch (status.kind) {
    case 'open':
      return <span className="conn good" data-testid="connection-status">Connected</span>;
    case 'connecting':
      return <span className="conn wait" data-testid="connection-status">Connecting…</span>;
    case 'reconnecting':
      return (
        <span className="conn wait" data-testid="connection-status">
          Reconnecting (attempt {status.attempt}
          {status.delayMs > 0 ? `, in ${Math.ceil(status.delayMs / 1000)} s` : ''})…
        </span>
      );
    case 'closed':
      return <span className="conn bad" data-testid="connection-status">Disconnected: {status.reason}</span>;
  }
}
