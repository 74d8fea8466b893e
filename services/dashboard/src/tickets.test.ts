import { describe, expect, it } from 'vitest';
import {
  agentBlockedReason,
  agentExitLabel,
  agentLastScreen,
  buildBoard,
  healthProblems,
  NO_AGENT_CREDENTIAL,
  relativeTime,
  safeUrl,
} from './tickets';
import type { Ticket, TicketList } from './types';

function ticket(overrides: Partial<Ticket>): Ticket {
  return {
    id: 'id',
    identifier: 'T-1',
    title: 'title',
    description: '',
    priority: 'none',
    labels: ['claude'],
    state: 'Todo',
    state_group: 'unstarted',
    url: null,
    source: 'local',
    status: 'pending',
    session_id: null,
    session_name: null,
    created_at: null,
    updated_at: null,
    approved_at: null,
    started_at: null,
    completed_at: null,
    summary: null,
    tracker_sync: { state: 'none', error: null, attempts: 0 },
    error: null,
    ...overrides,
  };
}

const list = (...tickets: Ticket[]): TicketList => ({ tickets, count: tickets.length });

describe('buildBoard', () => {
  it('orders pending tickets by priority, then the oldest first', () => {
    const board = buildBoard(
      list(
        ticket({ id: 'low', identifier: 'T-1', priority: 'low', created_at: '2026-01-01T00:00:00Z' }),
        ticket({ id: 'urgent-new', identifier: 'T-2', priority: 'urgent', created_at: '2026-01-03T00:00:00Z' }),
        ticket({ id: 'urgent-old', identifier: 'T-3', priority: 'urgent', created_at: '2026-01-02T00:00:00Z' }),
        ticket({ id: 'odd', identifier: 'T-4', priority: 'whatever' as Ticket['priority'] }),
      ),
      list(),
      list(),
    );
    expect(board.pending.map((t) => t.id)).toEqual(['urgent-old', 'urgent-new', 'low', 'odd']);
  });

  it('splits the active list into running and needing attention', () => {
    const board = buildBoard(
      list(),
      list(
        ticket({ id: 'q', status: 'queued' }),
        ticket({ id: 'a', status: 'active' }),
        ticket({ id: 'o', status: 'overdue' }),
        ticket({ id: 'f', status: 'failed', updated_at: '2026-01-01T00:00:00Z' }),
        ticket({ id: 'i', status: 'interrupted', updated_at: '2026-01-02T00:00:00Z' }),
      ),
      list(),
    );
    expect(board.running.map((t) => t.id).sort()).toEqual(['a', 'o', 'q']);
    expect(board.attention.map((t) => t.id)).toEqual(['i', 'f']);
  });

  it('lists completed tickets newest first and hides tickets acted on', () => {
    const board = buildBoard(
      list(ticket({ id: 'p1' }), ticket({ id: 'p2' })),
      list(),
      list(
        ticket({ id: 'c-old', status: 'completed', completed_at: '2026-01-01T10:00:00Z' }),
        ticket({ id: 'c-new', status: 'completed', completed_at: '2026-01-02T10:00:00Z' }),
      ),
      new Set(['p1']),
    );
    expect(board.pending.map((t) => t.id)).toEqual(['p2']);
    expect(board.completed.map((t) => t.id)).toEqual(['c-new', 'c-old']);
  });

  it('keeps a ticket that is no longer pending out of the pending column', () => {
    const board = buildBoard(list(ticket({ id: 'x', status: 'active' })), list(), list());
    expect(board.pending).toEqual([]);
  });
});

describe('healthProblems', () => {
  const healthy = {
    status: 'healthy' as const,
    tmux_service: true,
    pending_count: 0,
    active_count: 0,
    completed_count: 0,
  };

  it('is null when the daemon is healthy', () => {
    expect(healthProblems({ health: healthy })).toBeNull();
  });

  it('reports a failed request as the problem', () => {
    expect(healthProblems({ error: 'Health check failed: 502 Bad Gateway' })).toEqual([
      'Health check failed: 502 Bad Gateway',
    ]);
  });

  it('passes on the daemon’s own reasons', () => {
    expect(
      healthProblems({ health: { ...healthy, status: 'degraded', problems: ['Plane API answers 500'] } }),
    ).toEqual(['Plane API answers 500']);
  });

  it('names the tmux service when the daemon cannot reach it and gives no reason', () => {
    const problems = healthProblems({ health: { ...healthy, status: 'unhealthy', tmux_service: false } });
    expect(problems).toHaveLength(1);
    expect(problems?.[0]).toMatch(/tmux-sessions/);
  });

  it('still explains an unhealthy status with no details', () => {
    expect(healthProblems({ health: { ...healthy, status: 'degraded', problems: [] } })).toEqual([
      'The daemon reports status "degraded".',
    ]);
  });
});

describe('safeUrl', () => {
  it('keeps http and https links', () => {
    expect(safeUrl('https://plane.example/ws/PROJ-1')).toBe('https://plane.example/ws/PROJ-1');
  });

  it('drops script and data links and garbage', () => {
    expect(safeUrl('javascript:alert(1)')).toBeNull();
    expect(safeUrl('data:text/html,<b>x</b>')).toBeNull();
    expect(safeUrl('not a url')).toBeNull();
    expect(safeUrl(null)).toBeNull();
  });
});

describe('relativeTime', () => {
  const now = Date.parse('2026-11-25T12:00:00Z');
  it('speaks in minutes and hours for recent times', () => {
    expect(relativeTime('2026-11-25T11:59:50Z', now)).toBe('just now');
    expect(relativeTime('2026-11-25T11:55:00Z', now)).toBe('5 min ago');
    expect(relativeTime('2026-11-25T09:00:00Z', now)).toBe('3 h ago');
  });
  it('says so when there is no time', () => {
    expect(relativeTime(null, now)).toBe('unknown time');
    expect(relativeTime('garbage', now)).toBe('unknown time');
  });
});

describe('agentBlockedReason', () => {
  const health = {
    status: 'healthy' as const,
    tmux_service: true,
    pending_count: 0,
    active_count: 0,
    completed_count: 0,
  };

  it('blocks approvals when the daemon says no agent credential is configured', () => {
    expect(agentBlockedReason({ ...health, agent_credential: 'none', agent_ready: false })).toBe(
      NO_AGENT_CREDENTIAL,
    );
    expect(NO_AGENT_CREDENTIAL).toBe(
      'No agent credential configured: approvals cannot start an agent. Set agent.api_key_env, ' +
        'agent.api_key_file or agent.credentials_file in the settings, then run aiwf up.',
    );
  });

  it('lets approvals through when the agent is ready', () => {
    expect(agentBlockedReason({ ...health, agent_credential: 'api_key', agent_ready: true })).toBeNull();
    expect(agentBlockedReason({ ...health, agent_credential: 'unknown', agent_ready: true })).toBeNull();
  });

  it('treats an older daemon (no field) or an unread health as ready', () => {
    expect(agentBlockedReason(health)).toBeNull();
    expect(agentBlockedReason(null)).toBeNull();
    expect(agentBlockedReason(undefined)).toBeNull();
  });
});

describe('agentExitLabel', () => {
  it('names the exit status of an agent that stopped without completing', () => {
    expect(agentExitLabel({ agent_exit_status: 127 })).toBe('exit 127');
    expect(agentExitLabel({ agent_exit_status: 0 })).toBe('exit 0');
    expect(agentExitLabel({ agent_exit_status: -9 })).toBe('exit -9');
  });

  it('is null when there is no exit status (or an older daemon sends none)', () => {
    expect(agentExitLabel({ agent_exit_status: null })).toBeNull();
    expect(agentExitLabel({})).toBeNull();
    expect(agentExitLabel(ticket({}))).toBeNull();
    expect(agentExitLabel({ agent_exit_status: Number.NaN })).toBeNull();
  });
});

describe('agentLastScreen', () => {
  it('drops the blank padding of a terminal screen and keeps the rest as it is', () => {
    const screen = '\n\n$ claude   \r\nbash: line 1: claude: command not found\n  indented\n\n   \n\n';
    expect(agentLastScreen({ agent_output: screen })).toBe(
      '$ claude\nbash: line 1: claude: command not found\n  indented',
    );
  });

  it('is null when there is nothing to show', () => {
    expect(agentLastScreen({ agent_output: null })).toBeNull();
    expect(agentLastScreen({})).toBeNull();
    expect(agentLastScreen({ agent_output: ' \n\t\n' })).toBeNull();
  });
});
