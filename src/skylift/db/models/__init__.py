"""SQLAlchemy models of the newest release (4.3.12).

Only code that runs against a database at the newest revision uses these (the management
node). Checks and migrations read older databases through Core and reflection instead.
"""

from skylift.db.models import compute, identity, infrastructure, network, platform  # noqa: F401
from skylift.db.models.base import Base

metadata = Base.metadata
