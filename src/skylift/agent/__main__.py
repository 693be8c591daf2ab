"""`python -m skylift.agent serve ...`: the same command as `skylift agent serve`, without
loading the other command groups."""

from skylift.cli.agent import app
from skylift.cli.entry import run

if __name__ == "__main__":
    run(app, "python -m skylift.agent")
