"""The one exception type a user can cause (the CLI turns it into a message and exit code 2), and the
interrupt SIGTERM raises where a command handles it as Ctrl-C."""

from __future__ import annotations

import signal
import threading


def a(word: str) -> str:
    """`word` after the article English gives it in a message: "an experiment file", "an int", "a list"."""
    w = word.lstrip("'\"`").lower()
    vowel = w[:1] in ("a", "e", "i", "o", "u") and not w.startswith(("uni", "use", "usa", "one", "eu"))
    return f"{'an' if vowel else 'a'} {word}"


def count(n: int, word: str) -> str:
    """`n word` with the plural a count needs: "1 epoch", "2 epochs", "1,200 images"."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class ResnasError(Exception):
    """A mistake in user input (a template, an arch file, a budget): the message says where and what is allowed."""

    def __init__(self, message: str, *, where: str = "", field: str = ""):
        self.where = where
        self.field = field
        self.bare = message
        prefix = ": ".join(p for p in (where, field) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self):  # raised in a worker process, it arrives whole: its field and place with it
        return _error, (self.bare, self.where, self.field)


def _error(message: str, where: str, field: str) -> ResnasError:
    return ResnasError(message, where=where, field=field)


class Terminated(KeyboardInterrupt):
    """The interrupt SIGTERM raises: handled as Ctrl-C is, but the command then exits 143 (128 + 15), not 130."""


def sigterm_as_interrupt():
    """SIGTERM (a scheduler's stop, `kill`) ends a search or a training as Ctrl-C does: trials marked, study
    resumable, the last epoch saved. Returns the handler it replaced (None off the main thread, where no
    handler can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise Terminated

    return signal.signal(signal.SIGTERM, interrupt)
