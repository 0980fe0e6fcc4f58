"""Entry points: the `edgemaxx` command, the bench and demo commands, terminal rendering.

Top of the floor plan: this package may import every other; none imports it.
"""
