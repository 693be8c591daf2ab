"""Transports: how the management node and the upgrade tool reach a node (local or ssh)."""

from skylift.transport.base import Result, Transport
from skylift.transport.local import LocalTransport

__all__ = ["LocalTransport", "Result", "Transport"]
