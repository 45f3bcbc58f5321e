"""Presentation: one presentation model rendered to the terminal, figures, HTML and export formats."""
