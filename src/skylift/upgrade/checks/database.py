"""The cloud database is reachable with the credentials given."""

from skylift.engine.checks import check
from skylift.errors import SkyliftError


@check("database-reachable", "The cloud database is reachable", gate=True,
       remedy="start the database server, or give the right password with --password-file "
              "or SKYLIFT_DB_PASSWORD")
def reachable(ctx):
    try:
        ctx.db.check_reachable()
    except SkyliftError as exc:
        return f"{exc.what} ({exc.why})"
    return None
