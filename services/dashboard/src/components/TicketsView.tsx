import { useCallback, useMemo, useRef, useState } from 'react';
import { describe, type ApiClient } from '../api';
import { changeLoadError, normalizeChange } from '../change';
import { agentExitLabel, agentLastScreen, buildBoard, relativeTime, safeUrl, STATUS_LABEL } from '../tickets';
import type { Ticket, TicketList } from '../types';
import { usePolling } from '../usePolling';
import { TicketChangeReview, type ChangeLoad } from './TicketChangeReview';

interface Props {
  api: ApiClient;
  onOpenTerminal: (sessionId: string, title: string) => void;
  /** Why Approve and Retry cannot start an agent (from the daemon's health), or null. */
  agentBlocked?: string | null;
}

type Feedback = { kind: 'success' | 'error'; text: string };
type Action = 'approve' | 'reject' | 'retry';

const ACTION_LABELS: Record<Action, { idle: string; busy: string; done: string }> = {
  approve: { idle: 'Approve', busy: 'Approving…', done: 'Approved' },
  reject: { idle: 'Reject', busy: 'Rejecting…', done: 'Rejected' },
  retry: { idle: 'Retry', busy: 'Retrying…', done: 'Retrying' },
};
const EMPTY: TicketList = { tickets: [], count: 0 };
const AGENT_BLOCKED_ID = 'agent-blocked-notice';

export function TicketsView({ api, onOpenTerminal, agentBlocked = null }: Props) {
  const [lists, setLists] = useState<{ pending: TicketList; active: TicketList; completed: TicketList } | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [busy, setBusy] = useState<Record<string, string>>({});
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const [feedback, setFeedback] = useState<Feedback | null>(null);
  // Each ticket's change, fetched once when its review is first opened and kept
  // while the view lives; which reviews are open survives the list refreshes.
  const [changes, setChanges] = useState<Record<string, ChangeLoad>>({});
  const [openReviews, setOpenReviews] = useState<ReadonlySet<string>>(new Set());
  const changeRequests = useRef(new Set<string>());

  const loadChange = useCallback(
    async (ticket: Ticket) => {
      if (changeRequests.current.has(ticket.id)) return;
      changeRequests.current.add(ticket.id);
      setChanges((c) => ({ ...c, [ticket.id]: { state: 'loading' } }));
      try {
        const change = normalizeChange(await api.ticketChange(ticket.id), ticket.branch ?? '');
        setChanges((c) => ({ ...c, [ticket.id]: { state: 'loaded', change } }));
      } catch (error) {
        setChanges((c) => ({ ...c, [ticket.id]: { state: 'error', message: changeLoadError(error) } }));
      } finally {
        changeRequests.current.delete(ticket.id);
      }
    },
    [api],
  );

  const toggleReview = (ticket: Ticket, open: boolean) => {
    setOpenReviews((current) => {
      if (current.has(ticket.id) === open) return current;
      const next = new Set(current);
      if (open) next.add(ticket.id);
      else next.delete(ticket.id);
      return next;
    });
    if (open && !changes[ticket.id]) void loadChange(ticket);
  };

  const refresh = useCallback(async () => {
    try {
      const [pending, active, completed] = await Promise.all([
        api.pendingTickets(),
        api.activeTickets(),
        api.completedTickets(),
      ]);
      setLists({ pending, active, completed });
      setHidden(new Set());
      setLoadError(null);
    } catch (error) {
      setLoadError(`Cannot load tickets: ${describe(error)}`);
    }
  }, [api]);
  usePolling(refresh, 3000);

  const board = useMemo(
    () => buildBoard(lists?.pending ?? EMPTY, lists?.active ?? EMPTY, lists?.completed ?? EMPTY, hidden),
    [lists, hidden],
  );

  const act = async (ticket: Ticket, action: Action) => {
    setBusy((b) => ({ ...b, [ticket.id]: action }));
    setFeedback(null);
    try {
      await api[action](ticket.id);
      setFeedback({ kind: 'success', text: `${ACTION_LABELS[action].done} ${ticket.identifier}: ${ticket.title}` });
      if (action !== 'retry') setHidden((h) => new Set(h).add(ticket.id));
      await refresh();
    } catch (error) {
      setFeedback({ kind: 'error', text: `Could not ${action} ${ticket.identifier}: ${describe(error)}` });
    } finally {
      setBusy((b) => {
        const next = { ...b };
        delete next[ticket.id];
        return next;
      });
    }
  };

  return (
    <div className="tickets-view">
      {feedback ? (
        <div className={`notice ${feedback.kind}`} role="status" data-testid="ticket-feedback">
          <span>{feedback.text}</span>
          <button type="button" className="btn ghost small" aria-label="Dismiss" onClick={() => setFeedback(null)}>
            ×
          </button>
        </div>
      ) : null}
      {loadError ? (
        <div className="notice error" role="alert">
          {loadError}
        </div>
      ) : null}
      {!lists && !loadError ? <p className="muted">Loading tickets…</p> : null}

      <section className="panel" aria-labelledby="pending-heading" data-testid="pending-section">
        <h2 id="pending-heading">
          Pending approval <span className="count">{board.pending.length}</span>
        </h2>
        {agentBlocked ? (
          <div className="notice warn" role="alert" id={AGENT_BLOCKED_ID} data-testid="agent-blocked-notice">
            {agentBlocked}
          </div>
        ) : null}
        {board.pending.length === 0 ? <p className="empty">No tickets wait for approval.</p> : null}
        <div className="cards">
          {board.pending.map((ticket) => (
            <article className="card" key={ticket.id} data-ticket-id={ticket.id} data-testid="pending-ticket">
              <TicketHeader ticket={ticket} />
              {ticket.description ? <p className="description">{ticket.description}</p> : null}
              <div className="actions">
                <ActionButton
                  action="approve"
                  className="btn primary"
                  busy={busy[ticket.id]}
                  blocked={agentBlocked}
                  onClick={() => void act(ticket, 'approve')}
                />
                <ActionButton action="reject" className="btn danger-outline" busy={busy[ticket.id]} onClick={() => void act(ticket, 'reject')} />
              </div>
            </article>
          ))}
        </div>
      </section>

      <section className="panel" aria-labelledby="active-heading" data-testid="active-section">
        <h2 id="active-heading">
          Active <span className="count">{board.running.length}</span>
        </h2>
        {board.running.length === 0 ? <p className="empty">Nothing is running.</p> : null}
        <ul className="rows">
          {board.running.map((ticket) => (
            <li className="row" key={ticket.id} data-ticket-id={ticket.id} data-testid="active-ticket">
              <div className="row-main">
                <TicketHeader ticket={ticket} />
                <span className="muted small">
                  {ticket.session_name ?? 'no session yet'} · started {relativeTime(ticket.started_at ?? ticket.approved_at)}
                </span>
              </div>
              <button
                type="button"
                className="btn"
                disabled={!ticket.session_id}
                onClick={() => ticket.session_id && onOpenTerminal(ticket.session_id, ticket.identifier)}
              >
                Open terminal
              </button>
            </li>
          ))}
        </ul>
      </section>

      {board.attention.length > 0 ? (
        <section className="panel attention" aria-labelledby="attention-heading" data-testid="attention-section">
          <h2 id="attention-heading">
            Failed or interrupted <span className="count">{board.attention.length}</span>
          </h2>
          <ul className="rows">
            {board.attention.map((ticket) => (
              <li className="row" key={ticket.id} data-ticket-id={ticket.id} data-testid="failed-ticket">
                <div className="row-main">
                  <TicketHeader ticket={ticket} />
                  <TicketError ticket={ticket} />
                </div>
                <div className="actions">
                  {ticket.session_id && ticket.status === 'failed' ? (
                    <button type="button" className="btn" onClick={() => onOpenTerminal(ticket.session_id!, ticket.identifier)}>
                      Open terminal
                    </button>
                  ) : null}
                  <ActionButton
                    action="retry"
                    className="btn primary"
                    busy={busy[ticket.id]}
                    blocked={agentBlocked}
                    onClick={() => void act(ticket, 'retry')}
                  />
                </div>
              </li>
            ))}
          </ul>
        </section>
      ) : null}

      <section className="panel" aria-labelledby="completed-heading" data-testid="completed-section">
        <h2 id="completed-heading">
          Completed <span className="count">{board.completed.length}</span>
        </h2>
        {board.completed.length === 0 ? <p className="empty">No completed tickets yet.</p> : null}
        <ul className="rows">
          {board.completed.map((ticket) => (
            <li className="row" key={ticket.id} data-ticket-id={ticket.id} data-testid="completed-ticket">
              <div className="row-main">
                <TicketHeader ticket={ticket} />
                {ticket.summary ? <p className="description">{ticket.summary}</p> : null}
                {agentExitLabel(ticket) ? <TicketError ticket={ticket} /> : null}
                <TicketChangeReview
                  ticket={ticket}
                  open={openReviews.has(ticket.id)}
                  load={changes[ticket.id]}
                  onToggle={(open) => toggleReview(ticket, open)}
                  onRetry={() => void loadChange(ticket)}
                />
              </div>
              <time className="muted small" dateTime={ticket.completed_at ?? undefined} title={ticket.completed_at ?? ''}>
                {relativeTime(ticket.completed_at)}
              </time>
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}

interface ActionButtonProps {
  action: Action;
  className: string;
  /** The action running on this ticket, if any: every button waits for it. */
  busy: string | undefined;
  /** Why this action cannot work right now (disables the button, shown as its title), or null. */
  blocked?: string | null;
  onClick: () => void;
}

function ActionButton({ action, className, busy, blocked = null, onClick }: ActionButtonProps) {
  return (
    <button
      type="button"
      className={className}
      disabled={Boolean(busy) || Boolean(blocked)}
      title={blocked ?? undefined}
      aria-describedby={blocked ? AGENT_BLOCKED_ID : undefined}
      onClick={onClick}
    >
      {busy === action ? ACTION_LABELS[action].busy : ACTION_LABELS[action].idle}
    </button>
  );
}

/** The reason a ticket stopped, its agent's exit status and, on demand, the agent's last screen. */
function TicketError({ ticket }: { ticket: Ticket }) {
  const exit = agentExitLabel(ticket);
  const screen = exit ? agentLastScreen(ticket) : null;
  if (!ticket.error && !exit) return null;
  return (
    <>
      <div className="ticket-error">
        {ticket.error ? <span className="error-text">{ticket.error}</span> : null}
        {exit ? (
          <span className="chip status-failed exit-status" data-testid="agent-exit" title="The agent's exit status">
            {exit}
          </span>
        ) : null}
      </div>
      {screen ? (
        <details className="agent-screen" data-testid="agent-screen">
          <summary>Show the agent&apos;s last screen</summary>
          <pre tabIndex={0} aria-label={`The last screen of the agent for ${ticket.identifier}`}>
            {screen}
          </pre>
        </details>
      ) : null}
    </>
  );
}

function TicketHeader({ ticket }: { ticket: Ticket }) {
  const url = safeUrl(ticket.url);
  return (
    <div className="ticket-header">
      <div className="ticket-title">
        {url ? (
          <a className="identifier" href={url} target="_blank" rel="noreferrer noopener">
            {ticket.identifier}
          </a>
        ) : (
          <span className="identifier">{ticket.identifier}</span>
        )}
        <span className="title">{ticket.title}</span>
      </div>
      <div className="chips">
        <span className={`chip priority-${ticket.priority}`}>{ticket.priority}</span>
        {ticket.status !== 'pending' ? (
          <span className={`chip status-${ticket.status}`}>{STATUS_LABEL[ticket.status] ?? ticket.status}</span>
        ) : null}
        {ticket.state ? <span className="chip state">{ticket.state}</span> : null}
        {ticket.labels.map((label) => (
          <span className="chip label" key={label}>
            {label}
          </span>
        ))}
        {ticket.tracker_sync?.state === 'failed' ? (
          <span className="chip status-failed" title={ticket.tracker_sync.error ?? ''}>
            tracker sync failed
          </span>
        ) : null}
      </div>
    </div>
  );
}
