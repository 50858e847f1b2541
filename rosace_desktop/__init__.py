"""The ROSACE desktop: a PySide6 shell with one tab per module."""
