from release_fixtures import artefacts, built, signing, trust  # noqa: F401  (fixtures)
