"""The lab's own error: the harness failed, not the cloud it built."""

from __future__ import annotations

from skylift.errors import OperationFailed


class LabError(OperationFailed):
    """A lab installation or host farm could not be built, started or stopped as asked."""
