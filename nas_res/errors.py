"""The one exception type a user can cause; the CLI turns it into a message and exit code 2."""

from __future__ import annotations


class ResnasError(Exception):
    """A mistake in user input (a template, an arch file, a budget): the message says where and what is allowed."""

    def __init__(self, message: str, *, where: str = "", field: str = ""):
        self.where = where
        self.field = field
        self.bare = message
        prefix = ": ".join(p for p in (where, field) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)
