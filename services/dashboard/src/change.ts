import { ApiError, describe } from './api';
import type { Ticket, TicketChange, TicketCommit } from './types';

/**
 * The change an agent made for a ticket (its branch, commits, diffstat and
 * patch) as the dashboard shows it. Pure functions, tested without a browser.
 *
 *   hasChangeToReview(ticket)          // offer "Review the change"?
 *   patchLines(change.patch)           // [{ text: '+new line', kind: 'add' }, ...]
 */

type ChangeFields = Pick<Ticket, 'status' | 'branch' | 'commits' | 'diffstat' | 'change_error'>;

/** The first 7 characters of a commit id, as git shows it short. */
export function shortSha(sha: string | null | undefined): string {
  return typeof sha === 'string' ? sha.trim().slice(0, 7) : '';
}

/** The ticket's branch name, or null when it has none (or an older orchestrator sent none). */
export function ticketBranch(ticket: Pick<Ticket, 'branch'>): string | null {
  const branch = ticket.branch;
  return typeof branch === 'string' && branch.trim() !== '' ? branch.trim() : null;
}

/** Why the change could not be recorded, or null. */
export function changeError(ticket: Pick<Ticket, 'change_error'>): string | null {
  const error = ticket.change_error;
  return typeof error === 'string' && error.trim() !== '' ? error.trim() : null;
}

/** The ticket's commits; none when the field is absent or malformed. */
export function ticketCommits(ticket: Pick<Ticket, 'commits'>): TicketCommit[] {
  return normalizeCommits(ticket.commits);
}

/** "1 commit", "3 commits"; null when the ticket does not say (older orchestrator). */
export function commitCountLabel(ticket: Pick<Ticket, 'commits'>): string | null {
  if (!Array.isArray(ticket.commits)) return null;
  const count = ticketCommits(ticket).length;
  return count === 1 ? '1 commit' : `${count} commits`;
}

/**
 * The last line of `git diff --stat` ("3 files changed, 10 insertions(+), 2
 * deletions(-)"), or null when there is no diffstat.
 */
export function diffstatSummary(diffstat: string | null | undefined): string | null {
  if (typeof diffstat !== 'string') return null;
  const lines = diffstat.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
  return lines.length > 0 ? lines[lines.length - 1]! : null;
}

/**
 * Whether the ticket offers "Review the change": it is completed, has a
 * branch, its change was recorded without error, and it is not known to be
 * empty (no commits and no diffstat). Absent commit fields (an orchestrator
 * that sends only the branch) leave the review on offer: the change endpoint
 * has the last word.
 */
export function hasChangeToReview(ticket: ChangeFields): boolean {
  if (ticket.status !== 'completed') return false;
  if (!ticketBranch(ticket) || changeError(ticket)) return false;
  const knownEmpty =
    Array.isArray(ticket.commits) && ticketCommits(ticket).length === 0 && !diffstatSummary(ticket.diffstat);
  return !knownEmpty;
}

export type PatchLineKind = 'add' | 'del' | 'hunk' | 'meta' | 'context';

export interface PatchLine {
  text: string;
  kind: PatchLineKind;
}

const FILE_HEADER = /^(\+\+\+|---)( |\t|$)/;
const HUNK_HEADER = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/;

/**
 * One line of a unified diff on its own: `+` added and `-` removed, except the
 * `+++`/`---` file headers; `@@` hunk headers; `diff`, `index`, mode and
 * rename lines and "\ No newline at end of file" as meta; the rest context.
 * Without the hunk's line counts a removed line reading "-- x" looks like a
 * header, so `patchLines` (which counts) is the one to render with.
 */
export function classifyPatchLine(line: string): PatchLineKind {
  if (line.startsWith('@@')) return 'hunk';
  if (FILE_HEADER.test(line)) return 'meta';
  if (line.startsWith('+')) return 'add';
  if (line.startsWith('-')) return 'del';
  if (line.startsWith('\\') || /^(diff |index |new file mode|deleted file mode|old mode|new mode|similarity index|dissimilarity index|rename from|rename to|copy from|copy to|Binary files )/.test(line)) {
    return 'meta';
  }
  return 'context';
}

/**
 * A patch split into classified lines. Inside a hunk the `@@ -a,b +c,d @@`
 * counts decide, so a removed "-- comment" or an added "++x" line is never
 * taken for a file header. A final line break adds no empty line; CRLF line
 * ends lose their CR.
 */
export function patchLines(patch: string | null | undefined): PatchLine[] {
  if (typeof patch !== 'string' || patch === '') return [];
  const raw = patch.split('\n');
  if (raw[raw.length - 1] === '') raw.pop();
  let oldLeft = 0;
  let newLeft = 0;
  return raw.map((line): PatchLine => {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (oldLeft > 0 || newLeft > 0) {
      const first = text.charAt(0);
      if (first === '+' && newLeft > 0) {
        newLeft -= 1;
        return { text, kind: 'add' };
      }
      if (first === '-' && oldLeft > 0) {
        oldLeft -= 1;
        return { text, kind: 'del' };
      }
      if ((first === ' ' || text === '') && oldLeft > 0 && newLeft > 0) {
        oldLeft -= 1;
        newLeft -= 1;
        return { text, kind: 'context' };
      }
      if (first === '\\') return { text, kind: 'meta' };
      // The counts were off: leave the hunk and read the line on its own.
      oldLeft = 0;
      newLeft = 0;
    }
    const hunk = HUNK_HEADER.exec(text);
    if (hunk) {
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      return { text, kind: 'hunk' };
    }
    return { text, kind: classifyPatchLine(text) };
  });
}

function normalizeCommits(value: unknown): TicketCommit[] {
  if (!Array.isArray(value)) return [];
  return value
    .filter((c): c is Record<string, unknown> => Boolean(c) && typeof c === 'object')
    .map((c) => ({
      sha: typeof c.sha === 'string' ? c.sha : '',
      subject: typeof c.subject === 'string' ? c.subject : '',
    }))
    .filter((c) => c.sha !== '' || c.subject !== '');
}

/** The change endpoint's answer with every field in shape, whatever was missing. */
export function normalizeChange(value: unknown, fallbackBranch = ''): TicketChange {
  const raw = value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  return {
    branch: typeof raw.branch === 'string' && raw.branch !== '' ? raw.branch : fallbackBranch,
    commits: normalizeCommits(raw.commits),
    diffstat: typeof raw.diffstat === 'string' ? raw.diffstat : '',
    patch: typeof raw.patch === 'string' ? raw.patch : '',
  };
}

/** What to say when the change cannot be loaded. */
export function changeLoadError(error: unknown): string {
  if (error instanceof ApiError && error.status === 404) return 'No change is recorded for this ticket.';
  return `Cannot load the change: ${describe(error)}`;
}
