"""Errors that carry enough context for a one-line message naming what went wrong."""

from __future__ import annotations

import reprlib

_NAME_LIMIT = 80  # characters of an entry or field name that a ConfigError quotes


def _named(value: object) -> str:
    """repr() of an entry or field name, cut short: ids come from the file, and a 10 MB id would
    otherwise be quoted whole (pipelines.config.shown does the same for values)."""
    if isinstance(value, str):
        return repr(value[:_NAME_LIMIT]) + ("..." if len(value) > _NAME_LIMIT else "")
    return reprlib.repr(value)[:_NAME_LIMIT]


class NewsmonError(Exception):
    """Base class: str(err) is the one-line message shown to users."""


class UsageError(NewsmonError):
    """The command line asked for something that cannot be: an unknown --topic, a bad --since, a
    malformed query. The CLI exits 2 (usage) with the one-line message, the API answers 422."""


class ConfigError(NewsmonError):
    """Bad configuration: names the file, the entry and the field."""

    def __init__(self, file: str, entry: str | None, field: str | None, message: str):
        self.file, self.entry, self.field, self.message = file, entry, field, message
        where = file
        if entry:
            where += f": entry {_named(entry)}"
        if field:
            where += f": field {_named(field)}"
        super().__init__(f"{where}: {message}")


class FetchError(NewsmonError):
    """A feed or page could not be fetched; names the URL and why (refused, too large, timeout...)."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, retry_after: float | None = None,
                 kind: str = "error", summary: str | None = None):
        self.url, self.reason, self.status, self.retry_after, self.kind = url, reason, status, retry_after, kind
        self._summary = summary
        super().__init__(f"{url}: {reason}")

    @property
    def summary(self) -> str:
        """The reason in a desk's words, without the URL ("DNS lookup failed for www.dawn.com",
        "timed out after 30 s", "HTTP 404 Not Found"): what a feeds table shows next to the feed."""
        if self._summary:
            return self._summary
        return self.reason.removeprefix(f"{self.kind}:").lstrip() or self.kind
