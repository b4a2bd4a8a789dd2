"""The one exception every reader raises for input that does not match its format."""

from __future__ import annotations

from os import PathLike
from pathlib import Path


class GazeFormatError(ValueError):
    """A delivered file does not match the format its reader expects.

    The message names the file, the 1-based line (when one is to blame), what was expected and what
    was found, so a lab can fix its export without reading the reader's code::

        gaze.asc line 1234: expected a numeric x coordinate, found 'abc'

    Parameters
    ----------
    path:
        The offending file.
    expected:
        What the reader needed, phrased to follow "expected" in the message.
    found:
        What it found instead; strings are quoted in the message, other values are shown as they are.
    line:
        1-based line number in the file, or ``None`` when the problem is not tied to one line.
    column:
        Column or field name involved, if any.
    note:
        Extra sentence appended to the message (e.g. how to fix it).
    """

    def __init__(
        self,
        path: str | PathLike[str] | None,
        expected: str,
        found: object,
        *,
        line: int | None = None,
        column: str | None = None,
        note: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.column = column
        self.expected = expected
        self.found = found
        self.note = note
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.path.name if self.path is not None else "<input>"
        if self.line is not None:
            where += f" line {self.line}"
        found = repr(self.found) if isinstance(self.found, str) else str(self.found)
        if isinstance(self.found, str) and len(found) > 120:
            found = found[:117] + "...'"
        message = f"{where}: expected {self.expected}, found {found}"
        if self.note:
            message += f" ({self.note})"
        return message

    def __reduce__(self):  # keeps the keyword-only fields when pickled across processes
        return (_rebuild, (self.path, self.expected, self.found, self.line, self.column, self.note))


def _rebuild(
    path: Path | None, expected: str, found: object, line: int | None, column: str | None, note: str | None
) -> GazeFormatError:
    return GazeFormatError(path, expected, found, line=line, column=column, note=note)
