"""User errors and how the command line reports them.

A `UserError` is a mistake in what was asked (an argument, a file, a checkpoint), not a bug:
the command line prints it as one line on stderr, `shr-fan <command>: error: <message>`, and
exits with status 2, without a traceback (`--debug` shows it). Every message names the argument
or the file and says what was expected. Library callers get the exception (a ValueError).
"""
from __future__ import annotations

import sys
import traceback

EXIT_USAGE = 2


class UserError(ValueError):
    """A mistake in the input: one line naming the argument or file and what was expected."""


def one_line(exc: BaseException) -> str:
    """The message of `exc` on one line. An exception re-raised by a DataLoader worker carries the
    worker's traceback in its message: its last line holds the original message."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].replace(".", "").isidentifier() \
            else last
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def run(prog: str, func, argv: list[str]) -> int:
    """func(argv) -> exit status, with user errors (UserError, OSError) reported as one line and
    status 2 (argparse's own exits are returned as their status); `--debug` anywhere in argv lets
    them raise with their traceback."""
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return func(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error, already printed as one line (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except (UserError, OSError) as exc:
        if debug:
            raise
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
