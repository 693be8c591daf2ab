"""The steps of the upgrade procedures, one module per area; each says what it does, how to
tell it is done, and how to undo it."""
