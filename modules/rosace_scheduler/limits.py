"""Limits on what the queue takes in: the size of an Observing File and the number of files.

A 10 MB file was once accepted and every queue listing then weighed 10 MB; a
thousand files at once stalled the sequencer. Both limits are options of the
scheduler (``max_file_bytes``, ``max_queue_files``); a file over a limit is
refused with a message naming the limit (REST: 413 for the size, 422 for a full
queue; queue folder: listed in ``rejected``), and the queue keeps working.
"""

from __future__ import annotations

from rosace_core.observing_file import ObservingFileError, Problem


class FileTooLarge(ObservingFileError):
    """An Observing File is larger than ``max_file_bytes`` (REST: 413)."""

    status = 413


class QueueFull(ObservingFileError):
    """The queue already holds ``max_queue_files`` files (REST: 422)."""

    status = 422


def check_file_size(size: int, source: str, options) -> None:
    """Raise FileTooLarge if ``size`` bytes exceed the scheduler's ``max_file_bytes``."""
    if size > options.max_file_bytes:
        raise FileTooLarge(source, [Problem("", f"the file is {size:,} bytes; an Observing File may be at most "
                                                f"{options.max_file_bytes:,} bytes ([scheduler] max_file_bytes)")])


def check_queue_room(queued: int, file_id: str, source: str, options) -> None:
    """Raise QueueFull if ``queued`` files already fill the queue (a file replacing a queued one always fits)."""
    if queued >= options.max_queue_files:
        raise QueueFull(source, [Problem("id", f"the queue is full ({queued} files, at most {options.max_queue_files}: "
                                               f"[scheduler] max_queue_files); '{file_id}' was not queued: remove a file first")])
