"""A worktree and a branch per ticket: the shell scripts that run git in the agent sandbox.

The orchestrator never runs git on the agents' repositories itself: an agent can plant hooks or
config there, which would then run next to the Plane key and the service token. Every git command
runs in the sandbox, as the agent user, in a tmux-sessions session whose command is one of the
scripts built here (one ``sh -c`` string, every value shell-quoted):

- ``start_script``: keep a bare mirror of the repository under ``<workspace>/.aiwf/repos/``,
  add the ticket's worktree ``<workspace>/<identifier>`` on its branch (new from the base branch
  on the first start, the same branch on a retry), then run the agent in it;
- ``finish_script``: on completion, commit what the agent left uncommitted and write the branch,
  the commits, the diffstat and the patch into the completion folder for ``read_results``;
- ``cleanup_script``: on delete, commit leftovers as ``wip: <identifier>`` and remove the
  worktree; the branch stays in the mirror.

Scripts on one repository take a lock (``flock`` on ``<mirror>.lock``) so that three tickets
started at once clone the mirror once and never fetch over each other.

Example::

    plan = plan_worktree(settings.repository, "/workspace", ticket)
    command = shell_command(start_script(plan, "claude 'the prompt'"))
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.core.config import RepositorySetting
from orchestrator.models import Commit, TicketRecord, Worktree

RESULTS_FOLDER = ".aiwf-results"
PATCH_LIMIT = 1024 * 1024
# What each result file may hold (the patch: its limit plus the note the finish job appends).
RESULT_LIMITS = {
    "branch": 1024,
    "commits": 256 * 1024,
    "diffstat": 256 * 1024,
    "patch": PATCH_LIMIT + 1024,
}
# The most commits and files a ticket's record lists (its state is served with every list).
COMMIT_LIMIT = 200
DIFFSTAT_FILES = 200
# tmux-sessions takes a session command of at most this many characters.
COMMAND_LIMIT = 8192
SUBJECT_LIMIT = 200
SHORTENED = "\n\n[summary shortened; the whole text is on the ticket]"
# Seconds a job waits for another script on the same repository before giving up.
START_LOCK_WAIT = 600
JOB_LOCK_WAIT = 90
COMMIT_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(.*)$")


class ChangeError(Exception):
    """The finish job's results cannot be used; the message is one sentence for the ticket."""


@dataclass(frozen=True)
class WorktreePlan:
    """Where a ticket works (its repository, worktree and branch; sandbox paths) and how git
    reaches the repository and signs its commits there."""

    url: str
    branch: str
    worktree: Worktree
    author_name: str
    author_email: str
    ssh_key: str | None

    @property
    def lock(self) -> str:
        return lock_of(self.worktree)


@dataclass(frozen=True)
class ChangeResult:
    """What the finish job found on the ticket's branch."""

    branch: str
    commits: list[Commit]
    diffstat: str
    patch: bytes


def safe_identifier(ticket: TicketRecord) -> str:
    """The ticket's identifier as a folder and branch name part (``WEB-12`` stays ``WEB-12``).

    >>> safe_identifier(TicketRecord(id="x", identifier="A b/../c", title="t", source="local"))
    'A-b-c'
    """
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", ticket.identifier).strip("-")[:64]
    return safe or "ticket-" + hashlib.sha256(ticket.id.encode()).hexdigest()[:12]


def plan_worktree(
    setting: RepositorySetting | None, workspace: str, ticket: TicketRecord
) -> WorktreePlan | None:
    """The ticket's worktree, or None when no repository applies (agents use the workspace).

    The mirror's name is a hash of the URL, so each repository is cloned once per workspace.
    """
    repository = setting.for_identifier(ticket.identifier) if setting is not None else None
    if setting is None or repository is None:
        return None
    name = safe_identifier(ticket)
    root = PurePosixPath(workspace)
    url_hash = hashlib.sha256(repository.url.encode()).hexdigest()[:16]
    worktree = Worktree(
        path=str(root / name),
        mirror=str(root / ".aiwf" / "repos" / f"{url_hash}.git"),
        base_branch=repository.base_branch,
    )
    return WorktreePlan(
        url=repository.url,
        branch=setting.branch_template.replace("{identifier}", name),
        worktree=worktree,
        author_name=setting.author_name,
        author_email=setting.author_email,
        ssh_key=setting.ssh_key,
    )


def lock_of(worktree: Worktree) -> str:
    """The lock file every script on that mirror takes (beside the mirror)."""
    return worktree.mirror.removesuffix(".git") + ".lock"


def shell_command(script: str) -> str:
    """The session command running ``script``: one ``sh -c`` string."""
    return "sh -c " + shlex.quote(script)


def _assign(**values: str) -> list[str]:
    """Shell variables holding the values, each quoted once; the script uses ``"$name"``."""
    return [f"{name}={shlex.quote(value)}" for name, value in values.items()]


def _take_lock(wait: int) -> list[str]:
    """Hold ``$lock`` on fd 9 (released when the script exits or closes fd 9).

    Without ``flock`` (a sandbox image lacking util-linux) scripts run unlocked.
    """
    return [
        'mkdir -p "${lock%/*}"',
        "if command -v flock >/dev/null 2>&1; then",
        '  exec 9>>"$lock"',
        f'  flock -w {wait} 9 || {{ echo "aiwf: $lock stayed locked for {wait} s" >&2; exit 1; }}',
        "fi",
    ]


def start_script(plan: WorktreePlan, agent_command: str) -> str:
    """Prepare the ticket's worktree, then ``exec`` the agent in it.

    ``set -e``: when git fails, its message is the last thing on the screen and the script
    exits non-zero, so the ticket shows it like any agent that exited.
    """
    worktree = plan.worktree
    lines = [
        "set -eu",
        *_assign(
            url=plan.url,
            base=worktree.base_branch,
            branch=plan.branch,
            mirror=worktree.mirror,
            worktree=worktree.path,
            lock=plan.lock,
        ),
        "export GIT_TERMINAL_PROMPT=0",
    ]
    if plan.ssh_key is not None:
        ssh = (
            f"ssh -i {shlex.quote(plan.ssh_key)} -o IdentitiesOnly=yes "
            "-o StrictHostKeyChecking=accept-new"
        )
        lines.append(f"export GIT_SSH_COMMAND={shlex.quote(ssh)}")
    lines += [
        *_take_lock(START_LOCK_WAIT),
        'if [ ! -d "$mirror" ]; then',
        '  echo "aiwf: cloning $url"',
        '  rm -rf "$mirror.partial"',
        '  git clone --bare --quiet -- "$url" "$mirror.partial"',
        '  git --git-dir="$mirror.partial" config remote.origin.fetch '
        "'+refs/heads/*:refs/remotes/origin/*'",
        # Per-worktree config (the author of each ticket's worktree) needs the extension, and
        # with it core.bare moves to the mirror's own config.worktree, or every worktree would
        # count as bare.
        '  git --git-dir="$mirror.partial" config core.repositoryformatversion 1',
        '  git --git-dir="$mirror.partial" config extensions.worktreeConfig true',
        '  git --git-dir="$mirror.partial" config --worktree core.bare true',
        '  git --git-dir="$mirror.partial" config --unset core.bare',
        '  mv "$mirror.partial" "$mirror"',
        "fi",
        'echo "aiwf: fetching $url"',
        'git --git-dir="$mirror" fetch --prune --quiet origin',
        'if [ -e "$worktree/.git" ]; then',
        '  echo "aiwf: continuing in $worktree"',
        'elif git --git-dir="$mirror" show-ref --verify --quiet "refs/heads/$branch"; then',
        '  echo "aiwf: $worktree on the existing branch $branch"',
        '  git --git-dir="$mirror" worktree prune',
        '  git --git-dir="$mirror" worktree add --quiet "$worktree" "$branch"',
        "else",
        '  echo "aiwf: $worktree on the new branch $branch from $base"',
        '  git --git-dir="$mirror" worktree add --quiet --no-track -b "$branch" "$worktree" '
        '"origin/$base"',
        "fi",
        f'git -C "$worktree" config --worktree user.name {shlex.quote(plan.author_name)}',
        f'git -C "$worktree" config --worktree user.email {shlex.quote(plan.author_email)}',
        "exec 9>&-",
        'cd "$worktree"',
        f"exec sh -c {shlex.quote(agent_command)}",
    ]
    return "\n".join(lines) + "\n"


def finish_script(worktree: Worktree, results: str, subject: str, body: str) -> str:
    """Commit what is uncommitted, then write the branch's change into ``results``.

    ``--no-verify``: the work is recorded as the agent left it; a hook of the repository must
    not keep a completed ticket's change out of its branch.
    """
    lines = [
        "set -eu",
        *_assign(
            worktree=worktree.path,
            base=worktree.base_branch,
            results=results,
            lock=lock_of(worktree),
            subject=subject,
            body=body,
        ),
        "export GIT_TERMINAL_PROMPT=0",
        *_take_lock(JOB_LOCK_WAIT),
        'cd "$worktree"',
        'rm -rf "$results"',
        'mkdir -p "$results"',
        "branch=$(git symbolic-ref --quiet --short HEAD) || "
        '{ echo "aiwf: $worktree is not on a branch (detached HEAD)" >&2; exit 1; }',
        "git add -A",
        "if ! git diff --cached --quiet; then",
        '  git commit --quiet --no-verify -m "$subject" -m "$body"',
        "fi",
        'fork=$(git merge-base HEAD "origin/$base")',
        f"git log --reverse --max-count={COMMIT_LIMIT} --format='%H%x09%s' "
        '"$fork..HEAD" > "$results/commits"',
        f'git diff --stat=120 --stat-count={DIFFSTAT_FILES} "$fork..HEAD" > "$results/diffstat"',
        'git diff "$fork..HEAD" > "$results/patch.full"',
        'size=$(wc -c < "$results/patch.full")',
        f'if [ "$size" -gt {PATCH_LIMIT} ]; then',
        f'  head -c {PATCH_LIMIT} "$results/patch.full" > "$results/patch"',
        f"  printf '\\n[aiwf: the patch has %s bytes; cut at {PATCH_LIMIT}]\\n' \"$size\" "
        '>> "$results/patch"',
        '  rm "$results/patch.full"',
        "else",
        '  mv "$results/patch.full" "$results/patch"',
        "fi",
        'printf \'%s\\n\' "$branch" > "$results/branch"',
    ]
    return "\n".join(lines) + "\n"


def cleanup_script(worktree: Worktree, message: str) -> str:
    """Commit leftovers to the ticket's branch, then remove its worktree (the branch stays).

    A worktree on a detached HEAD is kept: a commit there would be on no branch.
    """
    lines = [
        "set -eu",
        *_assign(
            worktree=worktree.path,
            mirror=worktree.mirror,
            lock=lock_of(worktree),
            message=message,
        ),
        "export GIT_TERMINAL_PROMPT=0",
        *_take_lock(JOB_LOCK_WAIT),
        'if [ -e "$worktree/.git" ]; then',
        '  cd "$worktree"',
        "  git symbolic-ref --quiet HEAD >/dev/null || "
        '{ echo "aiwf: $worktree is not on a branch (detached HEAD); kept" >&2; exit 1; }',
        "  git add -A",
        "  if ! git diff --cached --quiet; then",
        '    git commit --quiet --no-verify -m "$message"',
        "  fi",
        "  cd /",
        '  git --git-dir="$mirror" worktree remove --force --force "$worktree"',
        "fi",
        'if [ -d "$mirror" ]; then git --git-dir="$mirror" worktree prune; fi',
    ]
    return "\n".join(lines) + "\n"


def finish_command(worktree: Worktree, results: str, subject: str, summary: str) -> str:
    """The finish job's command, the commit message within tmux-sessions' command limit.

    The summary is the commit's body; a long one is shortened (the whole text stays on the
    ticket), since the session command may hold at most ``COMMAND_LIMIT`` characters.
    """
    subject = subject[:SUBJECT_LIMIT]

    def command(body: str) -> str:
        return shell_command(finish_script(worktree, results, subject, body))

    whole = command(summary)
    if len(whole) <= COMMAND_LIMIT:
        return whole
    shortest, longest = 0, len(summary)
    while shortest < longest:
        middle = (shortest + longest + 1) // 2
        if len(command(summary[:middle] + SHORTENED)) <= COMMAND_LIMIT:
            shortest = middle
        else:
            longest = middle - 1
    return command(summary[:shortest] + SHORTENED)


def _open_folder(name: str | Path, parent: int | None) -> int:
    """Open a folder below ``parent`` without following a symlink (the agent can write the
    completion folder); ``parent`` None opens the configured completion folder itself."""
    flags = os.O_RDONLY | os.O_DIRECTORY | (os.O_NOFOLLOW if parent is not None else 0)
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ChangeError(f"{name} of the finish job's results is not a folder") from None
        raise ChangeError(f"cannot open the finish job's results {name}: {exc.strerror}") from None


def _read_result(folder: int, name: str) -> bytes:
    """One result file: a regular file (never a symlink, FIFO or device) within its limit."""
    limit = RESULT_LIMITS[name]
    try:
        descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError as exc:
        reason = "is a symlink" if exc.errno == errno.ELOOP else f"cannot be read: {exc.strerror}"
        raise ChangeError(f"the finish job's {name} file {reason}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ChangeError(f"the finish job's {name} file is not a regular file")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            content = handle.read(limit + 1)
    finally:
        os.close(descriptor)
    if len(content) > limit:
        raise ChangeError(f"the finish job's {name} file is over {limit} bytes")
    return content


def _parse_commits(text: str) -> list[Commit]:
    commits = []
    for line in text.splitlines():
        match = COMMIT_LINE.match(line)
        if match is None:
            raise ChangeError(f"the finish job's commits file has a stray line: {line[:80]!r}")
        commits.append(Commit(sha=match.group(1), subject=match.group(2)))
    return commits


def read_results(completion_dir: Path, ticket_id: str) -> ChangeResult:
    """Read, then remove, the finish job's results in ``<completion_dir>/.aiwf-results/<id>/``.

    Every component below the completion folder is opened without following symlinks, so a
    link planted there can neither make the daemon read its own files nor delete them.
    """
    top = _open_folder(completion_dir, None)
    try:
        results = _open_folder(RESULTS_FOLDER, top)
        try:
            folder = _open_folder(ticket_id, results)
            try:
                raw = {name: _read_result(folder, name) for name in RESULT_LIMITS}
                for name in os.listdir(folder):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=folder)
            finally:
                os.close(folder)
            with contextlib.suppress(OSError):
                os.rmdir(ticket_id, dir_fd=results)
        finally:
            os.close(results)
    finally:
        os.close(top)
    try:
        branch, commits, diffstat = (
            raw[name].decode("utf-8") for name in ("branch", "commits", "diffstat")
        )
    except UnicodeDecodeError:
        raise ChangeError("the finish job's results are not UTF-8") from None
    branch = branch.strip()
    if not branch or "\n" in branch:
        raise ChangeError("the finish job's branch file does not name one branch")
    return ChangeResult(
        branch=branch,
        commits=_parse_commits(commits),
        diffstat=diffstat.rstrip(),
        patch=raw["patch"],
    )
