"""There is a cloud here to upgrade: an MN has run with this state folder, and its database
holds a cloud. Every later check assumes both."""

from skylift.engine.checks import check


@check("cloud-present", "A cloud is configured here", gate=True,
       remedy="run on the MN machine, or set SKYLIFT_HOME to the MN's state folder (or pass "
              "--db with the cloud's database)")
def present(ctx):
    if ctx.mn_token is None:
        return (f"no cloud is configured here: no management node has run with the state "
                f"folder {ctx.home}")
    if ctx.facts.release is None:
        return f"the database {ctx.db.display()} holds no cloud"
    return None
