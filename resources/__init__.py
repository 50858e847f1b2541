"""ROSACE's shipped resources (instruments, line lists, examples...), as package data.

Installed as the package ``rosace_resources``; find files with
:func:`rosace_core.resources.resource_path`, never by a path relative to this file.
"""
