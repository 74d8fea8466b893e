import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import {
  changeError,
  changeLoadError,
  classifyPatchLine,
  commitCountLabel,
  diffstatSummary,
  hasChangeToReview,
  normalizeChange,
  patchLines,
  shortSha,
  ticketBranch,
} from './change';
import type { Ticket } from './types';

type ChangeFields = Pick<Ticket, 'status' | 'branch' | 'commits' | 'diffstat' | 'change_error'>;

function fields(overrides: Partial<ChangeFields>): ChangeFields {
  return {
    status: 'completed',
    branch: 'aiwf/T-1',
    commits: [{ sha: '0123456789abcdef', subject: 'Fix the thing' }],
    diffstat: ' a.txt | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n',
    change_error: null,
    ...overrides,
  };
}

describe('shortSha', () => {
  it('keeps the first 7 characters', () => {
    expect(shortSha('0123456789abcdef0123456789abcdef01234567')).toBe('0123456');
    expect(shortSha('abc')).toBe('abc');
    expect(shortSha(' 0123456789 ')).toBe('0123456');
  });

  it('is empty for a missing id', () => {
    expect(shortSha(null)).toBe('');
    expect(shortSha(undefined)).toBe('');
  });
});

describe('hasChangeToReview', () => {
  it('offers a completed ticket with a branch and commits', () => {
    expect(hasChangeToReview(fields({}))).toBe(true);
  });

  it('offers it when an orchestrator sends the branch but no commit fields', () => {
    expect(hasChangeToReview(fields({ commits: undefined, diffstat: undefined }))).toBe(true);
  });

  it('offers it when the branch has a diffstat but no commits listed', () => {
    expect(hasChangeToReview(fields({ commits: [] }))).toBe(true);
  });

  it('does not offer a ticket known to have changed nothing', () => {
    expect(hasChangeToReview(fields({ commits: [], diffstat: '' }))).toBe(false);
    expect(hasChangeToReview(fields({ commits: [], diffstat: null }))).toBe(false);
  });

  it('does not offer tickets without a branch (older orchestrators)', () => {
    expect(hasChangeToReview(fields({ branch: null }))).toBe(false);
    expect(hasChangeToReview(fields({ branch: undefined }))).toBe(false);
    expect(hasChangeToReview(fields({ branch: '  ' }))).toBe(false);
  });

  it('does not offer a change that could not be recorded', () => {
    expect(hasChangeToReview(fields({ change_error: 'git worktree is gone' }))).toBe(false);
  });

  it('offers only completed tickets', () => {
    expect(hasChangeToReview(fields({ status: 'active' }))).toBe(false);
    expect(hasChangeToReview(fields({ status: 'failed' }))).toBe(false);
  });
});

describe('ticket change fields', () => {
  it('reads the branch and the change error, treating blanks as absent', () => {
    expect(ticketBranch({ branch: ' aiwf/T-1 ' })).toBe('aiwf/T-1');
    expect(ticketBranch({})).toBeNull();
    expect(changeError({ change_error: 'no repo' })).toBe('no repo');
    expect(changeError({ change_error: ' ' })).toBeNull();
    expect(changeError({})).toBeNull();
  });

  it('counts commits only when the ticket says', () => {
    expect(commitCountLabel({ commits: [{ sha: 'a', subject: 'x' }] })).toBe('1 commit');
    expect(commitCountLabel({ commits: [{ sha: 'a', subject: 'x' }, { sha: 'b', subject: 'y' }] })).toBe('2 commits');
    expect(commitCountLabel({ commits: [] })).toBe('0 commits');
    expect(commitCountLabel({})).toBeNull();
    expect(commitCountLabel({ commits: null })).toBeNull();
  });

  it('summarises the diffstat by its last line', () => {
    expect(diffstatSummary(' a.txt | 2 +-\n b.txt | 1 +\n 2 files changed, 2 insertions(+), 1 deletion(-)\n\n')).toBe(
      '2 files changed, 2 insertions(+), 1 deletion(-)',
    );
    expect(diffstatSummary('')).toBeNull();
    expect(diffstatSummary(null)).toBeNull();
  });
});

describe('classifyPatchLine', () => {
  it('marks added and removed lines, but not the file headers', () => {
    expect(classifyPatchLine('+added')).toBe('add');
    expect(classifyPatchLine('-removed')).toBe('del');
    expect(classifyPatchLine('+')).toBe('add');
    expect(classifyPatchLine('-')).toBe('del');
    expect(classifyPatchLine('+++ b/src/app.ts')).toBe('meta');
    expect(classifyPatchLine('--- a/src/app.ts')).toBe('meta');
    expect(classifyPatchLine('--- /dev/null')).toBe('meta');
  });

  it('knows hunk headers, git metadata and context', () => {
    expect(classifyPatchLine('@@ -1,3 +1,4 @@ function main()')).toBe('hunk');
    expect(classifyPatchLine('diff --git a/x b/x')).toBe('meta');
    expect(classifyPatchLine('index 83db48f..bf269f4 100644')).toBe('meta');
    expect(classifyPatchLine('new file mode 100644')).toBe('meta');
    expect(classifyPatchLine('\\ No newline at end of file')).toBe('meta');
    expect(classifyPatchLine(' unchanged')).toBe('context');
    expect(classifyPatchLine('')).toBe('context');
  });
});

describe('patchLines', () => {
  const patch = [
    'diff --git a/schema.sql b/schema.sql',
    'index 83db48f..bf269f4 100644',
    '--- a/schema.sql',
    '+++ b/schema.sql',
    '@@ -1,4 +1,4 @@',
    ' create table t (',
    '--- an old SQL comment',
    '+++ a new line that starts with ++',
    '-  id int',
    '+  id bigint',
    ' );',
    'diff --git a/new.txt b/new.txt',
    'new file mode 100644',
    '--- /dev/null',
    '+++ b/new.txt',
    '@@ -0,0 +1 @@',
    '+hello',
    '\\ No newline at end of file',
    '',
  ].join('\n');

  it('classifies each line, trusting the hunk counts over look-alike headers', () => {
    expect(patchLines(patch).map((l) => l.kind)).toEqual([
      'meta',
      'meta',
      'meta',
      'meta',
      'hunk',
      'context',
      'del',
      'add',
      'del',
      'add',
      'context',
      'meta',
      'meta',
      'meta',
      'meta',
      'hunk',
      'add',
      'meta',
    ]);
  });

  it('keeps the text as it is, without the final line break or CRs', () => {
    const lines = patchLines('@@ -1 +1 @@\r\n-<b>old</b>\r\n+<script>x</script>\r\n');
    expect(lines).toEqual([
      { text: '@@ -1 +1 @@', kind: 'hunk' },
      { text: '-<b>old</b>', kind: 'del' },
      { text: '+<script>x</script>', kind: 'add' },
    ]);
  });

  it('reads an empty line inside a hunk as context', () => {
    expect(patchLines('@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n').map((l) => l.kind)).toEqual([
      'hunk',
      'context',
      'context',
      'del',
      'add',
    ]);
  });

  it('falls back to single-line rules when the counts do not match', () => {
    expect(patchLines('@@ -1 +1 @@\n-a\n+b\n+c\n--- a/next\n').map((l) => l.kind)).toEqual([
      'hunk',
      'del',
      'add',
      'add',
      'meta',
    ]);
  });

  it('is empty for no patch', () => {
    expect(patchLines('')).toEqual([]);
    expect(patchLines(null)).toEqual([]);
  });
});

describe('normalizeChange', () => {
  it('fills in what the answer lacks', () => {
    expect(normalizeChange({ commits: [{ sha: 'abc' }, null, 'x'] }, 'aiwf/T-1')).toEqual({
      branch: 'aiwf/T-1',
      commits: [{ sha: 'abc', subject: '' }],
      diffstat: '',
      patch: '',
    });
    expect(normalizeChange(null)).toEqual({ branch: '', commits: [], diffstat: '', patch: '' });
  });

  it('keeps a complete answer as it is', () => {
    const change = { branch: 'b', commits: [{ sha: 's', subject: 'm' }], diffstat: 'd', patch: 'p' };
    expect(normalizeChange(change, 'other')).toEqual(change);
  });
});

describe('changeLoadError', () => {
  it('says there is no change on a 404, else why the load failed', () => {
    expect(changeLoadError(new ApiError(404, 'Not found.'))).toBe('No change is recorded for this ticket.');
    expect(changeLoadError(new ApiError(500, 'git failed'))).toBe('Cannot load the change: git failed');
  });
});
