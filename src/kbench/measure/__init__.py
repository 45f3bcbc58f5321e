"""The worker side: the timer, parity, call paths, the worker protocol, the budget, the cell runner."""
