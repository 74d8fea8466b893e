import type { SyntheticEvent } from 'react';
import {
  changeError,
  commitCountLabel,
  diffstatSummary,
  hasChangeToReview,
  patchLines,
  shortSha,
  ticketBranch,
} from '../change';
import type { Ticket, TicketChange } from '../types';

/** Where a ticket's change stands in the view's cache. */
export type ChangeLoad =
  | { state: 'loading' }
  | { state: 'loaded'; change: TicketChange }
  | { state: 'error'; message: string };

interface Props {
  ticket: Ticket;
  /** Whether the disclosure is open (kept by the view, so a list refresh never closes it). */
  open: boolean;
  /** The cached answer of `/api/tickets/{id}/change`, if it was asked for. */
  load: ChangeLoad | undefined;
  onToggle: (open: boolean) => void;
  onRetry: () => void;
}

/**
 * A completed ticket's branch and commit count, and "Review the change":
 * its commits, diffstat and patch. Everything is rendered as text.
 */
export function TicketChangeReview({ ticket, open, load, onToggle, onRetry }: Props) {
  const branch = ticketBranch(ticket);
  const error = changeError(ticket);
  if (!branch && !error) return null;
  const commits = commitCountLabel(ticket);
  const summary = diffstatSummary(ticket.diffstat);
  const reviewable = hasChangeToReview(ticket);

  return (
    <div className="ticket-change" data-testid="ticket-change">
      {branch ? (
        <div className="change-meta">
          <span className="chip branch" title="The ticket's git branch" data-testid="ticket-branch">
            {branch}
          </span>
          {commits && !error ? (
            <span className="chip" data-testid="ticket-commit-count">
              {commits}
            </span>
          ) : null}
          {summary && !error ? <span className="muted small">{summary}</span> : null}
        </div>
      ) : null}
      {error ? (
        <div className="change-warning" role="note" data-testid="change-error">
          <span aria-hidden="true">⚠</span> The change could not be recorded: {error}
        </div>
      ) : null}
      {!error && branch && !reviewable ? <span className="muted small">No changes on this branch.</span> : null}
      {reviewable ? (
        <details
          className="agent-screen change-review"
          data-testid="change-review"
          open={open}
          onToggle={(event: SyntheticEvent<HTMLDetailsElement>) => onToggle(event.currentTarget.open)}
        >
          <summary>Review the change</summary>
          {open ? <ChangeBody ticket={ticket} load={load} onRetry={onRetry} /> : null}
        </details>
      ) : null}
    </div>
  );
}

function ChangeBody({ ticket, load, onRetry }: { ticket: Ticket; load: ChangeLoad | undefined; onRetry: () => void }) {
  if (!load || load.state === 'loading') {
    return (
      <p className="muted small" role="status" data-testid="change-loading">
        Loading the change…
      </p>
    );
  }
  if (load.state === 'error') {
    return (
      <div className="change-load-error" role="alert" data-testid="change-load-error">
        <span className="error-text">{load.message}</span>
        <button type="button" className="btn small" onClick={onRetry}>
          Try again
        </button>
      </div>
    );
  }
  const { change } = load;
  const lines = patchLines(change.patch);
  return (
    <div className="change-body">
      {change.commits.length > 0 ? (
        <ul className="change-commits" data-testid="change-commits" aria-label={`Commits on ${change.branch}`}>
          {change.commits.map((commit, index) => (
            <li key={`${commit.sha}-${index}`}>
              <code className="sha" title={commit.sha}>
                {shortSha(commit.sha)}
              </code>{' '}
              <span className="subject">{commit.subject}</span>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted small">No commits.</p>
      )}
      {change.diffstat.trim() ? (
        <pre className="diffstat" tabIndex={0} data-testid="change-diffstat" aria-label={`Files changed for ${ticket.identifier}`}>
          {change.diffstat.replace(/\s+$/, '')}
        </pre>
      ) : null}
      {lines.length > 0 ? (
        <pre className="patch" tabIndex={0} data-testid="change-patch" aria-label={`The patch for ${ticket.identifier}`}>
          {lines.map((line, index) => (
            <span key={index} className={`patch-line ${line.kind}`}>
              {line.text}
              {'\n'}
            </span>
          ))}
        </pre>
      ) : (
        <p className="muted small">The patch is empty.</p>
      )}
    </div>
  );
}
