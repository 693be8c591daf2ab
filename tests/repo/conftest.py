import sys
from pathlib import Path

# The release fixtures (key, built artefacts, CLI runner) live beside the release tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "release"))

from release_fixtures import artefacts, built, signing, trust  # noqa: E402,F401  (fixtures)
