"""Arithmetic over results: sweeps, run comparison and the gate, history and trends."""
