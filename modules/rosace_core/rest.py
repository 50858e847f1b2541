"""REST plumbing shared by every module (the only part of rosace_core that imports Flask).

A module declares its routes on an :class:`Api`; request bodies and query
strings are validated by pydantic models, and the same models produce the
OpenAPI 3.1 document served at ``/api/v1/openapi.json``. Errors are JSON problem
documents (RFC 9457). State-changing methods need ``Authorization: Bearer``.

Typical module ``api.py``::

    api = Api("dome", "Dome and shelter control")

    @api.route("/status", response=DomeStatus)
    def status():
        return current_dome().status()

    def create_app(config=None, *, token=None):
        app = create_module_app(api, config=config, token=token)
        ...
        return app
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from rosace_core import __version__
from rosace_core.auth import explicit_token, resolve_token
from rosace_core.clock import now
from rosace_core.errors import (
    Aborted,
    ConfigError,
    ConflictError,
    DeviceError,
    NotFoundError,
    RosaceError,
)
from rosace_core.jobs import JobRunner

log = logging.getLogger(__name__)

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# --------------------------------------------------------------------------- problems


class ProblemError(Exception):
    """Raise in a view to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str = "", errors: list[dict] | None = None, **extra):
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.extra = extra
        super().__init__(detail or title)


def problem(status: int, title: str, detail: str = "", errors: list[dict] | None = None, **extra) -> Response:
    """Return a JSON problem document response."""
    body = {
        "type": f"https://rosace.example.org/problems/{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="rosace"'
    return resp


def _field_errors(exc: ValidationError, where: str) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or where, "message": err["msg"], "in": where}
        for err in exc.errors()
    ]


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ProblemError)
    def _problem(exc: ProblemError):
        return problem(exc.status, exc.title, exc.detail, exc.errors, **exc.extra)

    @app.errorhandler(ConflictError)
    def _conflict(exc: ConflictError):
        return problem(409, "Conflict", str(exc), reasons=exc.reasons)

    @app.errorhandler(NotFoundError)
    def _not_found(exc: NotFoundError):
        return problem(404, "Not found", str(exc))

    @app.errorhandler(Aborted)
    def _aborted(exc: Aborted):
        return problem(409, "Aborted", str(exc))

    @app.errorhandler(DeviceError)
    def _device(exc: DeviceError):
        # A device failure is the observatory's state, not a bug of the server.
        return problem(503, "Device unavailable", str(exc), device=exc.device)

    @app.errorhandler(ConfigError)
    def _config(exc: ConfigError):
        return problem(422, "Invalid configuration", str(exc))

    @app.errorhandler(RosaceError)
    def _rosace(exc: RosaceError):
        return problem(400, "Bad request", str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        resp = problem(exc.code or 500, exc.name, exc.description or "")
        # A 405 names the methods the route takes (RFC 9110: Allow is required there).
        for name, value in exc.get_headers():
            if name.lower() in ("allow", "retry-after"):
                resp.headers[name] = value
        return resp

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError):
        # json.loads recurses once per nesting level: a body nested 100,000 deep ends here.
        return problem(400, "Bad request", "the request body is nested too deeply")

    @app.errorhandler(Exception)
    def _bug(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal error", "an unexpected error occurred; see the server log")


# --------------------------------------------------------------------------- auth


def _check_token() -> Response | None:
    if request.method not in WRITE_METHODS:
        return None
    expected = current_app.config.get("ROSACE_TOKEN")
    if not expected:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return problem(401, "Unauthorized", "this request changes state and needs 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return problem(401, "Unauthorized", "invalid token")
    return None


# --------------------------------------------------------------------------- routes and OpenAPI


@dataclass
class Operation:
    """One documented route."""

    rule: str
    method: str
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    tags: list[str] = field(default_factory=list)


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule)


class Api:
    """A module's REST API: a Flask blueprint under ``/api/v1/<module>`` plus its OpenAPI description."""

    def __init__(self, module_id: str, title: str, description: str = ""):
        self.module_id = module_id
        self.title = title
        self.description = description
        self.prefix = f"/api/v1/{module_id}"
        self.blueprint = Blueprint(f"rosace_{module_id}", __name__, url_prefix=self.prefix)
        self.operations: list[Operation] = []
        self.models: dict[str, type[BaseModel]] = {}

    def route(
        self,
        rule: str,
        methods: tuple[str, ...] | list[str] = ("GET",),
        *,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        summary: str = "",
    ) -> Callable:
        """Declare a route; the view gets ``body=`` / ``query=`` validated models as keyword arguments.

        The view returns a pydantic model, a dict/list, ``(value, status)`` or a Flask Response.
        """

        def deco(fn: Callable) -> Callable:
            @wraps(fn)
            def view(**kwargs):
                if body is not None:
                    payload = request.get_json(silent=True)
                    if payload is None:
                        if request.get_data(cache=True) or request.method in ("POST", "PUT", "PATCH"):
                            raw = request.get_data(cache=True)
                            if raw:
                                raise ProblemError(400, "Bad request", "the request body is not valid JSON")
                        payload = {}
                    try:
                        kwargs["body"] = body.model_validate(payload)
                    except ValidationError as exc:
                        raise ProblemError(422, "Validation failed", "the request body is invalid", _field_errors(exc, "body")) from None
                if query is not None:
                    try:
                        kwargs["query"] = query.model_validate(request.args.to_dict())
                    except ValidationError as exc:
                        raise ProblemError(400, "Bad query parameter", "a query parameter is invalid", _field_errors(exc, "query")) from None
                return _to_response(fn(**kwargs), status)

            for method in methods:
                self.operations.append(Operation(rule, method.upper(), summary or (fn.__doc__ or "").strip().split("\n")[0], body, query, response, status))
            for model in (body, query, response):
                self._collect(model)
            self.blueprint.add_url_rule(rule, fn.__name__, view, methods=list(methods))
            return fn

        return deco

    def _collect(self, model: Any) -> None:
        if isinstance(model, type) and issubclass(model, BaseModel):
            self.models[model.__name__] = model
        elif isinstance(model, list) and model and isinstance(model[0], type) and issubclass(model[0], BaseModel):
            self.models[model[0].__name__] = model[0]

    def add_job_routes(self, runner: "JobRunner | Callable[[], JobRunner]", *, response: Any = None, abort: bool = True) -> None:
        """Expose a JobRunner: list jobs, one job, and (``abort=True``) abort a job.

        ``runner`` is the JobRunner, or a callable returning the current app's one
        (a module's blueprint is shared by every app built from it: tests build several).
        ``response``: the pydantic model of one job, for the OpenAPI document.
        """
        current = runner if callable(runner) and not isinstance(runner, JobRunner) else (lambda: runner)

        @self.route("/jobs", response=[response] if response is not None else None, summary="List recent jobs")
        def list_jobs():
            return [j.to_dict() for j in current().list()]

        @self.route("/jobs/<job_id>", response=response, summary="One job: state, progress, result or error")
        def get_job(job_id: str):
            return current().get(job_id).to_dict()

        if abort:
            @self.route("/jobs/<job_id>/abort", methods=("POST",), response=response, status=202, summary="Ask a job to stop")
            def abort_job(job_id: str):
                job = current().get(job_id)
                job.abort()
                return job.to_dict()


def _to_response(result: Any, status: int) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        result, status = result
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    elif isinstance(result, list):
        result = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result]
    resp = jsonify(result)
    resp.status_code = status
    return resp


def openapi_document(apis: list[Api], title: str | None = None) -> dict:
    """Build the OpenAPI 3.1 document of one or more APIs from their pydantic models."""
    ref = "#/components/schemas/{model}"
    schemas: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
    for api in apis:
        for name, model in api.models.items():
            schema = model.model_json_schema(ref_template=ref)
            for sub_name, sub in schema.pop("$defs", {}).items():
                schemas.setdefault(sub_name, sub)
            schemas[name] = schema
    paths: dict[str, Any] = {
        "/api/v1/health": {"get": {"summary": "Health", "operationId": "health", "responses": {"200": {"description": "alive", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    }
    problem_resp = {"description": "problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for api in apis:
        for op in api.operations:
            path = api.prefix + _openapi_path(op.rule)
            item: dict[str, Any] = {
                "summary": op.summary,
                "operationId": f"{api.module_id}_{op.method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
                "tags": [api.module_id],
                "responses": {},
            }
            params = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in __import__("re").findall(r"\{([A-Za-z_]+)\}", path)
            ]
            if op.query is not None:
                qs = op.query.model_json_schema(ref_template=ref)
                required = set(qs.get("required", []))
                for name, prop in qs.get("properties", {}).items():
                    params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
            if params:
                item["parameters"] = params
            if op.body is not None:
                item["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": ref.format(model=op.body.__name__)}}}}
            if op.response is None:
                success: dict = {}
            elif isinstance(op.response, list):
                success = {"type": "array", "items": {"$ref": ref.format(model=op.response[0].__name__)}}
            else:
                success = {"$ref": ref.format(model=op.response.__name__)}
            item["responses"][str(op.status)] = {"description": "success", "content": {"application/json": {"schema": success}}}
            for code in ("400", "404", "409", "422", "503"):
                item["responses"][code] = problem_resp
            if op.method in WRITE_METHODS:
                item["security"] = [{"bearer": []}]
                item["responses"]["401"] = problem_resp
            paths.setdefault(path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title or " / ".join(a.title for a in apis), "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def create_module_app(apis: Api | list[Api], *, config=None, token: str | None = None, name: str | None = None) -> Flask:
    """Build a Flask app serving one or more module APIs, health and OpenAPI.

    ``token`` (else the configuration's, else this installation's local token) is
    required on every state-changing request; ``token=""`` disables the check
    (tests of read-only behaviour only).
    """
    apis = apis if isinstance(apis, list) else [apis]
    app = Flask(name or f"rosace_{apis[0].module_id}")
    app.config["ROSACE_TOKEN"] = token if token is not None else resolve_token(config, apis[0].module_id)
    app.config["ROSACE_CONFIG"] = config
    app.json.sort_keys = False  # type: ignore[attr-defined]
    _register_error_handlers(app)
    app.before_request(_check_token)
    for api in apis:
        app.register_blueprint(api.blueprint)

    @app.get("/api/v1/health")
    def health():
        return jsonify({"status": "ok", "modules": [a.module_id for a in apis], "version": __version__, "time": now().isoformat()})

    @app.get("/api/v1/openapi.json")
    def openapi():
        return jsonify(openapi_document(apis))

    return app


# --------------------------------------------------------------------------- serving


def is_loopback(host: str) -> bool:
    """True when ``host`` is this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, config=None, module: str | None = None) -> None:
    """Refuse to listen beyond this machine unless a token was configured on purpose."""
    if not is_loopback(host) and not explicit_token(config, module):
        raise ConfigError("server", [("server.host", f"refusing to listen on {host!r} without a token: set [server] token in the configuration or ROSACE_TOKEN")])


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8700, *, config=None, module: str | None = None, threads: int = 8) -> None:
    """Serve an app with waitress until interrupted (never Flask's development server)."""
    import waitress

    from rosace_core.memory import tune_allocator

    check_bind(host, config, module)
    # Frames freed between exposures go back to the system (glibc; see rosace_core.memory).
    tune_allocator()
    log.info("serving %s on http://%s:%d", app.name, host, port)
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="rosace", channel_timeout=120)
    except OSError as exc:
        raise ConfigError("server", [(f"{module or 'server'} port", f"cannot listen on {host}:{port}: {exc.strerror or exc} (another program uses it? choose another with --port)")]) from None


class BackgroundServer:
    """A waitress server in a daemon thread on a free localhost port (tests, desktop local mode)."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 6):
        from waitress.server import create_server

        # the server's own socket map, closed whole by stop()
        self._map: dict = {}
        self.server = create_server(app, map=self._map, host=host, port=port, threads=threads, ident="rosace")
        self.port: int = self.server.effective_port  # type: ignore[union-attr]  # types-waitress lacks effective_port
        self.url = f"http://{host}:{self.port}"
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name=f"http-{app.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            # stop() closes the sockets under the loop's select(): "Bad file descriptor"
            # there is the expected end of the loop, not an error.
            if not self._stopping:
                raise

    def start(self) -> "BackgroundServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: close every socket of the server's map so its loop ends."""
        from waitress import wasyncore

        # server.close() alone leaves waitress's trigger pipe in the socket map and
        # the loop running until the join times out; closing the whole map ends it.
        self._stopping = True
        self.server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(self._map)
        self.thread.join(timeout=5)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
