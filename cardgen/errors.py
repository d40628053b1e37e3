"""One exception family. The CLI turns every `CardgenError` into exit code 2 and its message.

Messages say what was wrong, where (file, line, field) and what to do; they never contain tokens.
"""

from __future__ import annotations


class CardgenError(Exception):
    """Bad input or usage that the user can fix. Exit code 2, no traceback."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class CheckpointError(CardgenError):
    """The checkpoint cannot be read: missing, empty, unreadable, corrupt, or unsafe."""


class HubReferenceError(CardgenError):
    """An `hf://` reference that is malformed or does not resolve."""


class ConfigError(CardgenError):
    """A YAML/JSON input file (lineage.yaml, cardgen.yaml, policy.yaml) is invalid."""


class LineageConflictError(CardgenError):
    """What the user declared contradicts what the checkpoint's own files say."""
