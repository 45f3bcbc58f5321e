"""Stored runs: the results schema with its migrations, run folders written and read."""
