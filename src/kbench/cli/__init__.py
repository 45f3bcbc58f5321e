"""The `kbench` command: parse strings into typed requests, call the API, render the outcome, map exit codes."""
