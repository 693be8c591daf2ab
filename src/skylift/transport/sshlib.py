"""asyncssh, imported without the warnings `cryptography` (51 and later) raises at that import.

asyncssh defines its DSA key classes when imported, and cryptography warns that DSA is
deprecated each time (ten lines on stderr). skylift never makes or accepts a DSA key, and an
MN's or agent's stderr is its log: those lines would be read by operators as something
wrong with their cloud. Every skylift module imports asyncssh from here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    try:
        from cryptography.utils import CryptographyDeprecationWarning
    except ImportError:  # an older cryptography: it has no such warning to silence
        pass
    else:
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
    import asyncssh  # noqa: E402

__all__ = ["asyncssh"]
