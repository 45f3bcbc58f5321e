"""The bottom layer: typed errors, text formatting, small statistics, file helpers. Imports nothing of kbench."""
