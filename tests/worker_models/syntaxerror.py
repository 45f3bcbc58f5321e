"""Planted fault: not valid Python."""
MODEL = ModelSpec(name="syntaxerror",
