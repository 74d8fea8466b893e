/** Shapes shared with the orchestrator and tmux-sessions (see the API contract). */

export type TicketStatus =
  | 'pending'
  | 'queued'
  | 'active'
  | 'overdue'
  | 'completed'
  | 'failed'
  | 'interrupted';

export type Priority = 'urgent' | 'high' | 'medium' | 'low' | 'none';

export interface TrackerSync {
  state: 'ok' | 'pending' | 'failed' | 'none';
  error: string | null;
  attempts: number;
}

export interface Ticket {
  id: string;
  identifier: string;
  title: string;
  description: string;
  priority: Priority;
  labels: string[];
  state: string;
  state_group: string | null;
  url: string | null;
  source: 'plane' | 'local';
  status: TicketStatus;
  session_id: string | null;
  session_name: string | null;
  created_at: string | null;
  updated_at: string | null;
  approved_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  summary: string | null;
  tracker_sync?: TrackerSync | null;
  error: string | null;
  /**
   * When the agent exited without completing the ticket: its exit status and
   * the last screen of its terminal (plain text, at most 4000 characters).
   * Absent from older orchestrators: treat a missing field as null.
   */
  agent_exit_status?: number | null;
  agent_output?: string | null;
  /**
   * The git branch the ticket's agent worked on, its commits (oldest first as
   * the orchestrator lists them), the plain text of `git diff --stat`, and why
   * the change could not be recorded. All absent from older orchestrators:
   * treat a missing field as null (or no commits).
   */
  branch?: string | null;
  commits?: TicketCommit[] | null;
  diffstat?: string | null;
  change_error?: string | null;
}

export interface TicketCommit {
  sha: string;
  subject: string;
}

/** `GET /api/tickets/{id}/change`: what the agent changed on the ticket's branch. */
export interface TicketChange {
  branch: string;
  commits: TicketCommit[];
  diffstat: string;
  /** The unified diff as plain text (shown as text, never as HTML). */
  patch: string;
}

export interface TicketList {
  tickets: Ticket[];
  count: number;
}

/** How the orchestrator gives the agent its credential; 'none' means it has none. */
export type AgentCredential = 'api_key' | 'login' | 'none' | 'unknown';

export interface OrchestratorHealth {
  status: 'healthy' | 'degraded' | 'unhealthy';
  tmux_service: boolean;
  pending_count: number;
  active_count: number;
  completed_count: number;
  source?: string;
  problems?: string[];
  /** Absent from older orchestrators. */
  agent_credential?: AgentCredential;
  /** False only when no agent credential is configured; absent counts as ready. */
  agent_ready?: boolean;
}

export interface Session {
  id: string;
  name: string;
  command: string | null;
  cwd: string | null;
  created_at: string;
  alive: boolean;
  clients: number;
  ticket_id?: string | null;
  created_by?: string | null;
}

export interface NewSession {
  name?: string;
  command?: string;
  cwd?: string;
  cols?: number;
  rows?: number;
}

export interface Transcription {
  text: string;
  language: string | null;
  duration: number | null;
  segments: unknown[];
}
