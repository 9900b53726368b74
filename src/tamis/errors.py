"""Errors a user can act on. The CLI prints them as one line and exits 2, without a traceback."""

from __future__ import annotations


class TamisError(Exception):
    """Base class for errors caused by the user's input or options (exit code 2)."""

    exit_code = 2


class InputError(TamisError):
    """An input that cannot be used at all: names the file (and line or field when known)."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class RecipeError(TamisError):
    """A recipe that cannot be built: unknown operator, bad parameter, missing extra."""
