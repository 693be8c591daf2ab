"""Run `skylift upgrade run` in-process and SIGKILL this process at one event of one step.

    python crash_upgrade.py MN_HOME started|done STEP --image F --installer F --tool F

A kill -9 from inside at an exact step boundary: at `started` the journal says the step is in
flight and nothing of it ran; at `done` it is journalled done and the next has not begun.
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


cli_upgrade._bus = killing_bus
sys.argv = ["skylift", "upgrade", "run", "--offline", *sys.argv[4:]]
from skylift.cli.main import main  # noqa: E402

main()
