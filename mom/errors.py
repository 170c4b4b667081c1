"""Errors that one setting would fix, phrased for the interface that meets them.

A missing dataset or weights file is fixed by the same setting everywhere, but it is
spelt differently: ``CUB200(root, download=True)`` in Python, ``data.download: true`` in
a parameter file, ``--set data.download=true`` on the command line. The code that finds
the problem raises :class:`NeedsSetting` with both spellings; ``str(exc)`` is the Python
one (with the parameter-file field beside it), and the command line prints
:meth:`NeedsSetting.for_command_line`.
"""
from __future__ import annotations

__all__ = ["NeedsSetting"]


class NeedsSetting(FileNotFoundError):
    """``message`` (what is missing and how to get it by hand), then the setting that
    gets it instead: ``argument=value`` for the Python call that raised it, and
    ``field`` (``section.name`` of a parameter file) for configurations and the CLI.

    Example: ``NeedsSetting("CUB-200-2011 not found in /d", argument="download",
    value=True, field="data.download")``.
    """

    def __init__(self, message: str, *, argument: str, value, field: str):
        self.message, self.argument, self.value, self.field = message, argument, value, field
        super().__init__(f"{message}, or pass {argument}={value!r} "
                         f"({field}: {_yaml(value)} in a parameter file)")

    def for_command_line(self) -> str:
        """The same error as ``mom`` prints it: the fix as a ``--set`` override."""
        return f"{self.message}, or add --set {self.field}={_yaml(self.value)}"


def _yaml(value) -> str:
    """``value`` as a parameter file and ``--set`` write it (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)
