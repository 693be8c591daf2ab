"""`python -m skylift.mn serve ...`: the same command as `skylift mn serve`, without loading
the other command groups (an MN starts during the handover window, so it starts lean).

The database password comes from --password-file or SKYLIFT_DB_PASSWORD, never from argv.
"""

from skylift.cli.entry import run
from skylift.cli.mn import app

if __name__ == "__main__":
    run(app, "python -m skylift.mn")
