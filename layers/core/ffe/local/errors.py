"""Problems with local input or set-up that the user can fix: the CLI prints the message as one line, no traceback."""

from __future__ import annotations


class LocalError(RuntimeError):
    """The message names the problem and, where there is one, the fix."""


class StateInUseError(LocalError):
    """Another ffe command is using the state directory (``ffe reset`` waits for nobody)."""


class PortUnavailableError(LocalError):
    """``ffe api`` cannot bind its port."""
