"""User administration: ``python -m tmux_sessions.admin add-user NAME [--password-stdin]``.

Other commands: ``reset-password NAME [--password-stdin]`` and ``list-users``. Reads
TMUX_SESSIONS_DATA_DIR like the service; without ``--password-stdin`` the password is asked
twice on the terminal. Example::

    echo 'a long password' | python -m tmux_sessions.admin add-user alice --password-stdin
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from tmux_sessions.core.config import Settings
from tmux_sessions.fileio import StateFileError
from tmux_sessions.users import UserError, UserStore


class PasswordInputError(ValueError):
    """No password could be read."""


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise PasswordInputError("password: nothing on standard input")
        return password
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise PasswordInputError("password: the two entries differ")
    return first


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tmux_sessions.admin", description="Manage the users of the aiwf stack."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("add-user", "create a user"),
        ("reset-password", "set a new password (ends the user's open logins)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("username")
        command.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    commands.add_parser("list-users", help="print user names and creation times")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    store = UserStore(settings.users_file)
    try:
        if args.command == "list-users":
            for user in store.list_users():
                print(f"{user.username}\t{user.created_at}")
        elif args.command == "add-user":
            user = store.add_user(args.username, read_password(args.password_stdin))
            print(f"added user {user.username!r} to {settings.users_file}")
        else:
            user = store.reset_password(args.username, read_password(args.password_stdin))
            print(f"new password set for {user.username!r}")
    except (UserError, PasswordInputError, StateFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
