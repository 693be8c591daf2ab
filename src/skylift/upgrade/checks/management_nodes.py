"""The single-MN procedure upgrades one management node: refuse it on a cloud with several.

Upgrading one MN of an HA cloud would migrate the database under the others, which go on
serving it with the old release's code — two releases of MN on one database. Several MNs are
known from the HA record of the state folder (skylift.ha_record) and from the heartbeats of
MNs serving the database now (skylift.mn.ownership.live_members: running, fresh, and on this
machine a process that still runs).
"""

import sqlalchemy as sa

from skylift import ha_record
from skylift.engine.checks import check
from skylift.mn.ownership import live_members


@check("single-management-node", "The cloud has one management node",
       remedy="make the MNs one HA cloud (`skylift ha init` and `ha join`, docs/ha.md): the "
              "multi-MN upgrade then takes them all; or take the other MNs out (`skylift ha "
              "remove NAME`, or stop them), upgrade this one, and join them again")
def single(ctx):
    found = []
    cfg = ha_record.load(ctx.home)
    if cfg is not None and len(cfg.members) > 1:
        found.append("the HA record names " + ", ".join(f"{m.name} ({m.address})"
                                                       for m in cfg.members))
    eng = ctx.db.engine()
    try:
        with eng.connect() as conn:
            live = live_members(conn)
    except sa.exc.SQLAlchemyError:  # an old database without the table: no MN beats there
        live = []
    finally:
        eng.dispose()
    if len(live) > 1:
        found.append(f"{len(live)} MNs serve the database now (pids "
                     + ", ".join(f"{m['pid']} on {m['hostname']}" for m in live) + ")")
    if not found:
        return None
    return ("this cloud has several management nodes, and the single-MN upgrade would leave "
            "the others serving a migrated database: " + "; ".join(found))
