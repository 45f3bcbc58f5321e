"""The parent side of a run: planning, the session, the worker runner, result rows, sharding."""
