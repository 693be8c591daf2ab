"""Run `skylift upgrade run` in-process and SIGKILL this process at one event of one step.

    python crash_upgrade.py MN_HOME started|done STEP --image F --installer F --tool F
    python crash_upgrade.py MN_HOME statement STEP:TEXT --image F --installer F --tool F

A kill -9 from inside at an exact step boundary: at `started` the journal says the step is in
flight and nothing of it ran; at `done` it is journalled done and the next has not begun.
At `statement`, right after the first SQL statement holding TEXT while STEP runs (inside the
migration, say; the rehearsal before it runs the same statements on a copy).
"""

import os
import signal
import sys

from skylift.cli import upgrade as cli_upgrade
from skylift.engine.events import StepDone, StepStarted

mn_home, event, target = sys.argv[1], sys.argv[2], sys.argv[3]
kind = StepStarted if event == "started" else StepDone
real_bus = cli_upgrade._bus


def killing_bus(json: bool):
    bus, progress = real_bus(json)

    def on_event(e) -> None:
        if isinstance(e, kind) and e.step == target:
            os.kill(os.getpid(), signal.SIGKILL)

    bus.subscribe(on_event)
    return bus, progress


if event == "statement":
    import sqlalchemy as sa

    step, text = target.split(":", 1)
    running: list[str] = []

    def in_step_bus(json: bool):
        bus, progress = real_bus(json)
        bus.subscribe(lambda e: running.append(e.step) if isinstance(e, StepStarted) else None)
        return bus, progress

    @sa.event.listens_for(sa.engine.Engine, "after_cursor_execute")
    def _kill_after(conn, cursor, statement, parameters, context, executemany):
        if running and running[-1] == step and text in statement:
            os.kill(os.getpid(), signal.SIGKILL)

    cli_upgrade._bus = in_step_bus
else:
    cli_upgrade._bus = killing_bus
sys.argv = ["skylift", "upgrade", "run", "--offline", *sys.argv[4:]]
from skylift.cli.main import main  # noqa: E402

main()
