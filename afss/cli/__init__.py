"""`afss` command line: one subcommand per stage, each a thin layer over the Python API.

Each subcommand lives in its own module of this package with a ``register(subparsers)`` function
that adds its parser and sets ``func``. The CLI only parses, calls the API and maps `AfssError` to
``afss: error: ...`` on stderr with exit status 2 (``--debug`` shows the traceback). Options
default to ``None`` so that the library owns the defaults.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from afss.errors import AfssError

# OS errors that say something about a path or the disk, never about afss's own logic.
PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                         errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENOENT, errno.EEXIST, errno.EXDEV})

# Subcommands in the order the pipeline runs them.
COMMANDS = ("convert", "synth", "label", "refine", "export-yolo", "train", "predict", "export", "pretrain", "distill",
            "eval", "run", "config", "report", "doctor", "models")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error (the full usage is one ``--help`` away)."""

    def error(self, message: str):  # argparse's hook
        self.exit(2, f"{self.prog}: error: {message}{self._suggestion(message)} (see {self.prog} --help)\n")

    def _suggestion(self, message: str) -> str:
        """``; did you mean 'synth'?`` for a misspelt command or choice, ``--size`` for ``--sise``."""
        import difflib
        import re

        wrong, known = None, []
        choice = re.search(r"invalid choice: '([^']*)'", message)  # the choices come from the parser: their
        if choice:  # quoting in the message differs between Python versions
            wrong = choice.group(1)
            known = [str(c) for a in self._actions if a.choices is not None for c in a.choices]
        elif message.startswith("unrecognized arguments: "):
            wrong = next((a.split("=")[0] for a in message.split()[2:] if a.startswith("--")), None)
            known = [o for o in self._option_string_actions if o.startswith("--")]
        bare = {k.lstrip("-"): k for k in known}  # "--" alike in every option would make --bogus look like --out
        close = difflib.get_close_matches(wrong.lstrip("-"), list(bare), n=1) if wrong else []
        return f"; did you mean {bare[close[0]]!r}?" if close else ""


def build_parser() -> argparse.ArgumentParser:
    from afss import __version__

    parser = _Parser(
        prog="afss",
        description="Annotation-free spacecraft detection and segmentation (arXiv 2602.04699).",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"afss {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"afss.cli.{name.replace('-', '_')}").register(sub)
    for command in sub.choices.values():
        # no prefixes of long options: `--min` would silently mean whichever option starts so today
        # (--min-score, --min-area, ...) and something else once an option is added
        command.allow_abbrev = False
        # -q and --debug after the command too (`afss label -q ...`); given there, they win
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks and debug logs")
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="no progress bars, warnings only")
    return parser


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (the write end then polls POLLERR)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no file behind it (a test's capture), or no poll()
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command they were given to, which has the --help that lists its options
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    with _quiet_hugging_face(args.quiet):
        return _run(args)


@contextmanager
def _quiet_hugging_face(quiet: bool) -> Iterator[None]:
    """With -q, the Hugging Face libraries' own bars ("Loading weights") are off for the command, and
    back as they were after it, for a caller that runs commands in its own process."""
    if not quiet:
        yield
        return
    set_env = "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is imported
    imported = "transformers" in sys.modules
    before = imported and sys.modules["transformers"].utils.logging.is_progress_bar_enabled()
    if before:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if set_env:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        # on as before; or, imported during the command under our setting, as an import without -q sets it
        if before or (not imported and set_env and "transformers" in sys.modules):
            import warnings

            with warnings.catch_warnings():  # huggingface_hub read the variable at import: it warns, to stderr
                warnings.simplefilter("ignore")
                sys.modules["transformers"].utils.logging.enable_progress_bar()


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    stop = _stop_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # the reader of stdout went away (`afss eval ... | head`): what it wanted was printed, so stop
        # quietly, and keep Python from failing again as it flushes stdout on exit. A pipe elsewhere (a
        # worker, a subprocess) is a real error.
        if args.debug or not _stdout_closed():
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command a pipe closed on
    except AfssError as e:
        if args.debug:
            raise
        print(f"afss: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # A path the user gave that the system refuses (a name too long, a link loop, a file used as a
        # folder, no permission, a full or read-only disk): the user's to fix, so one line, no traceback.
        if args.debug or e.errno not in PATH_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"afss: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit) as e:
        import signal

        # Ray's driver puts its own SIGTERM handler in, which exits with the signal's number
        terminated = isinstance(e, _Terminated) or (isinstance(e, SystemExit) and e.code == signal.SIGTERM)
        if isinstance(e, SystemExit) and not terminated:
            raise
        again = " (what finished is kept: rerun the same command to continue)" if args.command in RESUMABLE else ""
        print(f"afss: {'stopped' if terminated else 'interrupted'}{again}", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    finally:
        stop()


# the commands whose rerun continues from a journal or a last epoch
RESUMABLE = ("label", "refine", "predict", "train", "distill", "run")


class _Terminated(KeyboardInterrupt):
    """A SIGTERM, raised where the command is, so that it unwinds as from Ctrl-C."""


def _stop_on_sigterm() -> Callable[[], None]:
    """A SIGTERM (``timeout``, a scheduler's stop, ``kill``) stops the command as Ctrl-C does: journals
    closed, "stopped" said, exit status 143. Not where a parent set SIGTERM to be ignored. Returns what
    puts the previous handler back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise _Terminated

    before = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, before)
