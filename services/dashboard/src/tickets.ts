import type { OrchestratorHealth, Priority, Ticket, TicketList } from './types';

/**
 * The ticket board as the dashboard shows it, built from the orchestrator's
 * three lists. Pure functions, so the rules are tested without a browser.
 *
 *   const board = buildBoard(pending, active, completed);
 *   board.attention // failed and interrupted tickets, to retry
 */
export interface Board {
  pending: Ticket[];
  running: Ticket[];
  attention: Ticket[];
  completed: Ticket[];
}

const PRIORITY_RANK: Record<Priority, number> = {
  urgent: 0,
  high: 1,
  medium: 2,
  low: 3,
  none: 4,
};

export function priorityRank(priority: string): number {
  return PRIORITY_RANK[priority as Priority] ?? PRIORITY_RANK.none;
}

function time(iso: string | null | undefined): number {
  if (!iso) return 0;
  const parsed = Date.parse(iso);
  return Number.isNaN(parsed) ? 0 : parsed;
}

/** Most urgent first; among equals, the oldest first (it has waited longest). */
export function byUrgency(a: Ticket, b: Ticket): number {
  return (
    priorityRank(a.priority) - priorityRank(b.priority) ||
    time(a.created_at) - time(b.created_at) ||
    a.identifier.localeCompare(b.identifier)
  );
}

export function buildBoard(
  pending: TicketList,
  active: TicketList,
  completed: TicketList,
  hidden: ReadonlySet<string> = new Set(),
): Board {
  const visible = (ticket: Ticket) => !hidden.has(ticket.id);
  const running = active.tickets.filter(
    (t) => visible(t) && (t.status === 'queued' || t.status === 'active' || t.status === 'overdue'),
  );
  const attention = active.tickets.filter(
    (t) => visible(t) && (t.status === 'failed' || t.status === 'interrupted'),
  );
  return {
    pending: pending.tickets.filter((t) => visible(t) && t.status === 'pending').sort(byUrgency),
    running: running.sort(
      (a, b) => time(a.started_at ?? a.approved_at) - time(b.started_at ?? b.approved_at),
    ),
    attention: attention.sort((a, b) => time(b.updated_at) - time(a.updated_at)),
    completed: [...completed.tickets.filter(visible)].sort(
      (a, b) => time(b.completed_at) - time(a.completed_at),
    ),
  };
}

/**
 * Why the daemon is not healthy, or null when it is. A failed request counts
 * as unhealthy too: the banner must speak whenever the daemon cannot be read.
 */
export function healthProblems(
  result: { health: OrchestratorHealth } | { error: string },
): string[] | null {
  if ('error' in result) return [result.error];
  const { health } = result;
  if (health.status === 'healthy') return null;
  const problems = [...(health.problems ?? [])];
  if (!health.tmux_service && !problems.some((p) => /tmux/i.test(p))) {
    problems.push('The tmux-sessions service is not reachable from the daemon.');
  }
  if (problems.length === 0) problems.push(`The daemon reports status "${health.status}".`);
  return problems;
}

/** Why approvals cannot start an agent; the notice and the disabled buttons' title. */
export const NO_AGENT_CREDENTIAL =
  'No agent credential configured: approvals cannot start an agent. Set agent.api_key_env, ' +
  'agent.api_key_file or agent.credentials_file in the settings, then run aiwf up.';

/**
 * Why Approve and Retry cannot start an agent, or null when they can. Only an
 * explicit `agent_ready: false` blocks them: an older orchestrator (no field)
 * or an unreadable health answer leaves them enabled, and the daemon's own
 * answer still has the last word.
 */
export function agentBlockedReason(health: OrchestratorHealth | null | undefined): string | null {
  return health?.agent_ready === false ? NO_AGENT_CREDENTIAL : null;
}

/** "exit 127" when the ticket's agent exited without completing it, else null. */
export function agentExitLabel(ticket: Pick<Ticket, 'agent_exit_status'>): string | null {
  const status = ticket.agent_exit_status;
  return typeof status === 'number' && Number.isFinite(status) ? `exit ${status}` : null;
}

/**
 * The last screen of the agent's terminal as worth showing: blank lines at
 * either end and line-end spaces (a terminal pads its screen with them)
 * dropped; null when nothing is left.
 */
export function agentLastScreen(ticket: Pick<Ticket, 'agent_output'>): string | null {
  const output = ticket.agent_output;
  if (typeof output !== 'string') return null;
  const text = output.replace(/\r\n?/g, '\n').replace(/[ \t]+$/gm, '');
  const trimmed = text.replace(/^\n+/, '').replace(/\s+$/, '');
  return trimmed === '' ? null : trimmed;
}

/** "just now", "5 min ago", "3 h ago", else the local date and time. */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  const at = time(iso);
  if (!at) return 'unknown time';
  const seconds = Math.round((now - at) / 1000);
  if (seconds < 45) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return new Date(at).toLocaleString();
}

export const STATUS_LABEL: Record<Ticket['status'], string> = {
  pending: 'Pending',
  queued: 'Queued',
  active: 'Running',
  overdue: 'Overdue',
  completed: 'Completed',
  failed: 'Failed',
  interrupted: 'Interrupted',
};

/** The ticket's upstream link if it is plain http(s); anything else (javascript:, data:) is dropped. */
export function safeUrl(url: string | null | undefined): string | null {
  if (!url) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}
