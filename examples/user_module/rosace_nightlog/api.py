"""The night log's REST API (``/api/v1/nightlog``), built like the built-in modules'."""

from __future__ import annotations

from flask import current_app
from pydantic import BaseModel, Field

from rosace_core.rest import Api, ProblemError, create_module_app
from rosace_nightlog.notes import CATEGORIES, NightLog

api = Api("nightlog", "Night log", "Timestamped notes about the night")


class NoteIn(BaseModel):
    """A new note."""

    text: str = Field(..., min_length=1, max_length=2000, description="what happened")
    category: str = Field("note", description=f"one of {', '.join(CATEGORIES)}")
    author: str = Field("", max_length=80)


class NoteOut(NoteIn):
    """A stored note."""

    id: int
    time: str = Field(..., description="ISO UTC, from the ROSACE clock")


class NightLogOptions(BaseModel):
    """The ``[nightlog]`` table of the observatory configuration (all optional)."""

    model_config = {"extra": "forbid"}  # a misspelt key is an error naming it, not silently ignored

    file_name: str = Field("nightlog.jsonl", pattern=r"^[\w.-]+$", description="file in the data folder's state/")
    default_author: str = Field("", max_length=80, description="author of notes sent without one")


class NotesQuery(BaseModel):
    """Filter of the note list."""

    category: str | None = None


def _log() -> NightLog:
    return current_app.extensions["rosace_nightlog"]


@api.route("/notes", query=NotesQuery, response=[NoteOut], summary="The notes, oldest first")
def list_notes(query: NotesQuery):
    return [vars(n) for n in _log().notes(query.category)]


@api.route("/notes", methods=("POST",), body=NoteIn, response=NoteOut, status=201, summary="Add a note")
def add_note(body: NoteIn):
    try:
        author = body.author or current_app.extensions["rosace_nightlog.options"].default_author
        return vars(_log().add(body.text, body.category, author))
    except ValueError as exc:
        raise ProblemError(422, "Invalid note", str(exc)) from None


def create_app(config=None, *, token=None):
    """Build the night log's Flask app; notes go to ``<data root>/state/<file_name>``."""
    from rosace_core.config import load_config, module_options

    if config is None:
        config = load_config()
    # [nightlog] options: a bad value stops here with the file and key named (ConfigError).
    options = module_options(config, "nightlog", NightLogOptions)
    app = create_module_app(api, config=config, token=token)
    app.extensions["rosace_nightlog.options"] = options
    app.extensions["rosace_nightlog"] = NightLog(config.data.state / options.file_name)
    return app
