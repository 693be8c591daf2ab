"""skylift: a private cloud of the ZStack kind, and the system that upgrades it."""

__version__ = "4.3.12"
