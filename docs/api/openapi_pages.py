"""MkDocs hook: one REST reference page per module, rendered from its OpenAPI document.

At build time each built-in module's app is built with ``create_app`` (a
temporary data folder, device addresses that lead nowhere, background loops
not started) and its ``/api/v1/openapi.json`` is read through Flask's test
client: the page shows exactly what the server serves, needs no network and
can never drift from the code. The pages are generated in memory as
``api/<module>.md``; nothing is written into ``docs/``.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("mkdocs.plugins.rosace_openapi")

MODULES = ("dome", "scheduler", "sequencer", "reduction", "share")

#: the discard port: device calls during the build fail at once, they never reach real hardware
_NOWHERE = "http://127.0.0.1:9"


def _build_config(root: Path):
    from rosace_core.config import ObservatoryConfig

    devices = {name: {"url": _NOWHERE, "timeout": 0.2, "retries": 1}
               for name in ("dome", "telescope", "spectro_camera", "guide_camera", "switch", "safety_monitor", "observing_conditions")}
    return ObservatoryConfig.model_validate({
        "data": {"root": str(root)},
        "devices": devices,
        "scheduler": {"watch_interval": 0},
    })


def openapi_of(module: str, root: Path) -> dict:
    """Return the OpenAPI document a module's server serves (built in-process, no network)."""
    from rosace_core.plugins import get_module, load_object

    spec = get_module(module)
    factory = load_object(spec.app)
    kwargs = {"token": "docs-build"}
    if "start" in inspect.signature(factory).parameters:
        kwargs["start"] = False  # the dome's safety loop must not run while building docs
    app = factory(_build_config(root), **kwargs)
    response = app.test_client().get("/api/v1/openapi.json")
    if response.status_code != 200:
        raise RuntimeError(f"{module}: GET /api/v1/openapi.json answered {response.status_code}")
    return response.get_json()


def _schema_type(schema: dict) -> str:
    if not schema:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema or "oneOf" in schema:
        parts = [_schema_type(s) for s in schema.get("anyOf", schema.get("oneOf", []))]
        return " or ".join(dict.fromkeys(parts))
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    if kind == "string" and schema.get("format"):
        return f"string ({schema['format']})"
    return kind


def _anchor(name: str) -> str:
    return "schema-" + name.lower().replace("_", "-")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(prop: dict) -> str:
    if "default" not in prop:
        return ""
    return f"`{json.dumps(prop['default'])}`"


def render_markdown(module: str, doc: dict) -> str:
    """Turn an OpenAPI 3.1 document into a Markdown reference page."""
    info = doc.get("info", {})
    lines = [
        f"# {module.title()} REST API",
        "",
        f"*Generated at build time from the module's `GET /api/v1/openapi.json` "
        f"({info.get('title', module)}, version {info.get('version', '?')}).* "
        f"Read [the {module} page](../{module}.md) for what the module does.",
        "",
        "Every module also answers `GET /api/v1/health` and `GET /api/v1/openapi.json`. "
        "Requests that change state need `Authorization: Bearer <token>` "
        "([tokens](../operations.md#tokens)); errors are JSON problem documents "
        "(`type`, `title`, `status`, `detail`, `errors[]`). Long actions answer `202` with a job "
        "to poll. Paths under `/api/v1` are stable ([stability policy](../stability.md)).",
        "",
        "## Endpoints",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    ops = []
    for path, item in doc.get("paths", {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item:
                ops.append((path, method, item[method]))
    for path, method, op in ops:
        lines.append(f"| `{method.upper()}` | [`{path}`](#{op['operationId'].lower().replace('_', '-')}) | {_cell(op.get('summary', ''))} |")
    lines.append("")
    for path, method, op in ops:
        anchor = op["operationId"].lower().replace("_", "-")
        lines += [f"### `{method.upper()} {path}` {{#{anchor}}}", ""]
        if op.get("summary"):
            lines += [op["summary"], ""]
        if op.get("security"):
            lines += ["Needs the bearer token.", ""]
        params = op.get("parameters", [])
        if params:
            lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
            for p in params:
                schema = p.get("schema", {})
                lines.append(f"| `{p['name']}` | {p['in']} | {_cell(_schema_type(schema))} | {'yes' if p.get('required') else 'no'} | {_cell(schema.get('description', ''))} |")
            lines.append("")
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            lines += [f"Request body (JSON): {_schema_type(body)}", ""]
        for status, resp in op.get("responses", {}).items():
            if status.startswith("2"):
                schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
                lines += [f"Answer `{status}`: {_schema_type(schema) if schema else 'JSON'}", ""]
    schemas = doc.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name in sorted(schemas):
            schema = schemas[name]
            lines += [f"### {name} {{#{_anchor(name)}}}", ""]
            if schema.get("description"):
                lines += [_cell(schema["description"]), ""]
            props = schema.get("properties", {})
            if props:
                required = set(schema.get("required", []))
                lines += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
                for field, prop in props.items():
                    lines.append(f"| `{field}` | {_cell(_schema_type(prop))} | {'yes' if field in required else 'no'} | {_cell(_default(prop))} | {_cell(prop.get('description', ''))} |")
                lines.append("")
            # Nested definitions pydantic puts under $defs are listed too.
            for sub, subschema in schema.get("$defs", {}).items():
                if sub not in schemas:
                    lines += [f"`{sub}`: {_cell(_schema_type(subschema))}", ""]
    return "\n".join(lines) + "\n"


def on_files(files, config):
    """Add ``api/<module>.md`` for every built-in module (MkDocs event)."""
    from mkdocs.structure.files import File

    from rosace_core.astro import configure_offline

    configure_offline()
    root = Path(tempfile.mkdtemp(prefix="rosace-docs-"))
    try:
        for module in MODULES:
            doc = openapi_of(module, root / module)
            files.append(File.generated(config, f"api/{module}.md", content=render_markdown(module, doc)))
    finally:
        shutil.rmtree(root, ignore_errors=True)  # a SQLite file still open on Windows stays behind; harmless
    return files
