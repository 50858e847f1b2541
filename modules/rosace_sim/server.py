"""The HTTP side of the simulator: Alpaca device and management APIs, and /sim/v1 control.

Alpaca rules followed here: HTTP 200 with ErrorNumber/ErrorMessage for ASCOM
errors; 400 (text/plain) for a bad path, a missing parameter or a value that
does not parse; parameter names case-insensitive; ClientTransactionID echoed and
ServerTransactionID counted from 1; ``imagearray`` as JSON or, when the client
accepts ``application/imagebytes``, as ImageBytes.

``/sim/v1/...`` is the simulator's own control API (JSON, problem documents);
requests that change state need ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import inspect
import itertools
import json
import logging
import math
import re
import struct
import threading
import time
from typing import Any

import numpy as np
from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rosace_core import __version__
from rosace_core.clock import get_clock
from rosace_core.rest import problem

from rosace_sim.devices.base import AscomError, NotImplementedAscom, SimDevice
from rosace_sim.interfaces import is_member
from rosace_sim.faults import Fault
from rosace_sim.observatory import Observatory
from rosace_sim.scenario import DEVICE_TYPES, FAULT_KINDS, WeatherValues

log = logging.getLogger(__name__)

UINT32_MAX = 4294967295
IMAGEBYTES = "application/imagebytes"
#: Wall seconds a 'slow' fault adds to every answer; a 'timeout' fault holds answers up to this long.
SLOW_DELAY = 2.0
TIMEOUT_HOLD = 30.0


class BadRequest(Exception):
    """Answer HTTP 400 with this text (Alpaca: bad path or bad value)."""


def _parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise BadRequest(f"parameter {name}={text!r} is not a boolean (True or False)")


# Python's int()/float() also take '1_2', fullwidth or other Unicode digits and words such
# as 'nan': Alpaca values are plain ASCII numbers, so the text is matched first.
_INT = re.compile(r"[+-]?[0-9]+")
_UINT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _parse_int(name: str, text: str) -> int:
    if not _INT.fullmatch(text.strip()):
        raise BadRequest(f"parameter {name}={text!r} is not an integer")
    return int(text.strip())


def _parse_float(name: str, text: str) -> float:
    if not _FLOAT.fullmatch(text.strip()):
        raise BadRequest(f"parameter {name}={text!r} is not a number")
    value = float(text.strip())
    if not math.isfinite(value):
        raise BadRequest(f"parameter {name}={text!r} is not a finite number")
    return value


_PARSERS = {bool: _parse_bool, int: _parse_int, float: _parse_float, str: lambda n, t: t}
_SIGNATURES: dict[Any, list[tuple[str, Any, bool]]] = {}


def _signature(fn) -> list[tuple[str, Any, bool]]:
    """(ASCOM parameter name, type, required) of a device member."""
    key = getattr(fn, "__func__", fn)
    sig = _SIGNATURES.get(key)
    if sig is None:
        params = inspect.signature(fn).parameters.values()
        hints = {}
        try:
            import typing

            hints = typing.get_type_hints(key)
        except Exception:  # lambdas and generated members have no hints
            hints = {}
        sig = [(p.name, hints.get(p.name, str), p.default is inspect.Parameter.empty) for p in params]
        _SIGNATURES[key] = sig
    return sig


def _uint32(params: dict, name: str) -> int | None:
    text = params.get(name.lower())
    if text is None or text == "":
        return None
    if not _UINT.fullmatch(text):
        raise BadRequest(f"{name}={text!r} is not an unsigned 32-bit integer")
    value = int(text)
    if not 0 <= value <= UINT32_MAX:
        raise BadRequest(f"{name}={text!r} is out of range 0-{UINT32_MAX}")
    return value


class AlpacaServer:
    """The Flask app of one simulated observatory."""

    def __init__(self, observatory: Observatory, token: str | None = None, location: str = "", *, alpaca_token: str | None = None):
        self.obs = observatory
        self.token = token
        #: When set, Alpaca PUTs (device control) need it: HTTP Basic (any user, the token as password,
        #: what Alpaca clients such as alpyca or ASCOM Remote send) or 'Authorization: Bearer'.
        self.alpaca_token = alpaca_token
        self.location = location or observatory.scenario.site.name
        self._stid = itertools.count(1)
        self._stid_lock = threading.Lock()
        self.app = Flask("rosace_sim")
        self.app.json.sort_keys = False  # type: ignore[attr-defined]
        self._routes()

    # ------------------------------------------------------------------ helpers

    def next_stid(self) -> int:
        with self._stid_lock:
            return next(self._stid)

    @staticmethod
    def _params() -> dict[str, str]:
        """Request parameters by lower-case name (query for GET, form body for PUT)."""
        params = {k.lower(): v for k, v in request.args.items()}
        if request.method == "PUT":
            params.update({k.lower(): v for k, v in request.form.items()})
        return params

    def _envelope(self, value: Any, ctid: int | None, error: AscomError | None = None) -> dict:
        body: dict[str, Any] = {}
        if error is None and value is not None:
            body["Value"] = value
        # The schema wants ClientTransactionID >= 1: a client that sent none (or 0) gets none back.
        if ctid:
            body["ClientTransactionID"] = ctid
        body["ServerTransactionID"] = self.next_stid()
        body["ErrorNumber"] = error.number if error else 0
        body["ErrorMessage"] = error.message if error else ""
        return body

    @staticmethod
    def _text(status: int, message: str) -> Response:
        return Response(message, status=status, mimetype="text/plain")

    def _hold_for_faults(self, device: SimDevice) -> None:
        """Simulate slow or hanging devices (wall-clock delays)."""
        if device.fault("timeout"):
            deadline = time.monotonic() + TIMEOUT_HOLD
            while time.monotonic() < deadline and device.fault("timeout"):
                time.sleep(0.1)
        elif device.fault("slow"):
            time.sleep(SLOW_DELAY)

    # ------------------------------------------------------------------ routes

    def _routes(self) -> None:
        app = self.app

        @app.route("/api/v1/<device_type>/<device_number>/<member>", methods=["GET", "PUT"])
        def alpaca(device_type: str, device_number: str, member: str):
            if request.method == "PUT" and self.alpaca_token and not self._alpaca_authorized():
                resp = self._text(401, "device control on this server needs credentials (HTTP Basic, the token as password)")
                resp.headers["WWW-Authenticate"] = 'Basic realm="rosace-sim"'
                return resp
            try:
                return self._alpaca(device_type, device_number, member)
            except BadRequest as exc:
                return self._text(400, str(exc))

        @app.get("/management/apiversions")
        def apiversions():
            return self._management([1])

        @app.get("/management/v1/description")
        def description():
            return self._management({"ServerName": self.obs.server_name, "Manufacturer": "ROSACE project", "ManufacturerVersion": __version__, "Location": self.location})

        @app.get("/management/v1/configureddevices")
        def configureddevices():
            return self._management(self.obs.configured_devices())

        @app.get("/setup")
        def setup():
            rows = "".join(f"<li>{d['DeviceType']} {d['DeviceNumber']}: {d['DeviceName']} ({d['UniqueID']})</li>" for d in self.obs.configured_devices())
            return Response(f"<html><body><h1>{self.obs.server_name}</h1><p>ROSACE {__version__}, scenario {self.obs.scenario.name}.</p><ul>{rows}</ul></body></html>", mimetype="text/html")

        @app.get("/setup/v1/<device_type>/<device_number>/setup")
        def device_setup(device_type: str, device_number: str):
            dev = self.obs.device(device_type, int(device_number)) if _UINT.fullmatch(device_number) else None
            if dev is None:
                return Response("<html><body>No such device.</body></html>", status=403, mimetype="text/html")
            return Response(f"<html><body><h1>{dev.display_name}</h1><p>Configured by the scenario file; nothing to set here.</p></body></html>", mimetype="text/html")

        self._sim_routes()

    def _management(self, value: Any) -> Response:
        try:
            params = {k.lower(): v for k, v in request.args.items()}
            ctid = _uint32(params, "ClientTransactionID")
            _uint32(params, "ClientID")
        except BadRequest as exc:
            return self._text(400, str(exc))
        body: dict[str, Any] = {"Value": value}
        if ctid is not None:
            body["ClientTransactionID"] = ctid
        body["ServerTransactionID"] = self.next_stid()
        return jsonify(body)

    def _alpaca(self, device_type: str, device_number: str, member: str) -> Response:
        if device_type not in DEVICE_TYPES or device_type != device_type.lower():
            raise BadRequest(f"unknown or unsupported device type {device_type!r}")
        if not _UINT.fullmatch(device_number) or int(device_number) > UINT32_MAX:
            raise BadRequest(f"device number {device_number!r} is not an unsigned integer")
        device = self.obs.device(device_type, int(device_number))
        if device is None:
            raise BadRequest(f"no {device_type} number {device_number} on this server")
        if member != member.lower():  # URLs are lower case
            raise BadRequest("Alpaca member names are lower case")
        verb = "get" if request.method == "GET" else "put"
        fn = getattr(device, f"{verb}_{member}", None)
        if fn is None:
            other = getattr(device, f"{'put' if verb == 'get' else 'get'}_{member}", None)
            if other is not None:
                resp = self._text(405, f"{member} does not accept {request.method}")
                resp.headers["Allow"] = "PUT" if verb == "get" else "GET"
                return resp
            if is_member(device_type, verb, member):
                # Part of the interface, not offered by this simulator: ASCOM NotImplemented.
                params = self._params()
                ctid = _uint32(params, "ClientTransactionID")
                _uint32(params, "ClientID")
                return jsonify(self._envelope(None, ctid, NotImplementedAscom(f"{device_type}.{member} is not implemented by this simulator")))
            raise BadRequest(f"{device_type} has no member {member!r}")
        params = self._params()
        ctid = _uint32(params, "ClientTransactionID")
        _uint32(params, "ClientID")
        kwargs = {}
        for name, typ, required in _signature(fn):
            text = params.get(name.lower())
            if text is None:
                if required:
                    raise BadRequest(f"missing parameter {name}")
                continue
            kwargs[name] = _PARSERS.get(typ, _PARSERS[str])(name, text)
        self._hold_for_faults(device)
        try:
            device.check_call(member)
            value = fn(**kwargs)
        except AscomError as exc:
            body = self._envelope(None, ctid, exc)
            if member in ("imagearray", "imagearrayvariant"):
                # The schema's oneOf (single / multi plane) needs Rank to tell them apart, even on errors.
                body = {"Type": 2, "Rank": 2, **body}
            return jsonify(body)
        except BadRequest:
            raise
        except Exception:  # a bug: Alpaca says 500 with a text message
            log.exception("simulator error in %s %s/%s", request.method, device_type, member)
            return self._text(500, f"internal simulator error in {member}; see the server log")
        if member in ("imagearray", "imagearrayvariant"):
            return self._image_response(device, value, ctid)
        return jsonify(self._envelope(value, ctid))

    def _image_response(self, device, image: np.ndarray, ctid: int | None) -> Response:
        """The image as ImageBytes (when accepted) or JSON; ASCOM arrays are [x][y], i.e. image.T."""
        accept = request.headers.get("Accept", "").lower()
        stid = self.next_stid()
        if IMAGEBYTES in accept:
            image, payload, xmit = device.image_payload()
            # ImageBytes header: version, error, ctid, stid, data start, image type (Int32),
            # transmission type, rank, dimensions 1-3 (NumX, NumY, 0).
            header = struct.pack("<11i", 1, 0, ctid or 0, stid, 44, 2, xmit, 2, image.shape[1], image.shape[0], 0)
            resp = Response([header, payload], mimetype=IMAGEBYTES, direct_passthrough=True)
            resp.headers["Content-Length"] = str(len(header) + len(payload))
            return resp
        head: dict[str, Any] = {"Type": 2, "Rank": 2}
        if ctid:
            head["ClientTransactionID"] = ctid
        head.update({"ServerTransactionID": stid, "ErrorNumber": 0, "ErrorMessage": ""})
        prefix = json.dumps(head)[:-1]
        body = prefix + ', "Value": ' + json.dumps(image.T.tolist(), separators=(",", ":")) + "}"
        return Response(body, mimetype="application/json")

    # ------------------------------------------------------------------ /sim/v1

    def _alpaca_authorized(self) -> bool:
        assert self.alpaca_token
        expected = self.alpaca_token.encode()
        auth = request.authorization
        if auth is not None and auth.type == "basic" and auth.password:
            return hmac.compare_digest(auth.password.encode(), expected)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)

    def _check_token(self) -> Response | None:
        if request.method in ("GET", "HEAD", "OPTIONS") or not self.token:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return problem(401, "Unauthorized", "this request changes the simulation and needs 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return problem(401, "Unauthorized", "invalid token")
        return None

    def _body(self, model: type[BaseModel]):
        payload = request.get_json(silent=True)
        if payload is None:
            if request.get_data():
                raise _Problem(problem(400, "Bad request", "the request body is not valid JSON"))
            payload = {}
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "in": "body"} for e in exc.errors()]
            raise _Problem(problem(422, "Validation failed", "the request body is invalid", errors)) from None

    def _sim_routes(self) -> None:
        app = self.app
        obs = self.obs

        @app.before_request
        def _auth():
            if request.path.startswith("/sim/"):
                return self._check_token()
            return None

        @app.errorhandler(_Problem)
        def _problem(exc: _Problem):
            return exc.response

        @app.errorhandler(RecursionError)
        def _too_deep(exc: RecursionError):
            return problem(400, "Bad request", "the request body is nested too deeply")

        @app.get("/sim/v1/state")
        def sim_state():
            return jsonify(obs.state())

        @app.get("/sim/v1/weather")
        def sim_weather():
            return jsonify(obs.weather.values_at(get_clock().now()))

        @app.put("/sim/v1/weather")
        def sim_set_weather():
            body = self._body(WeatherUpdate)
            override = obs.weather.set_override(body.model_dump(exclude_unset=True))
            return jsonify({"override": override, "weather": obs.weather.values_at(get_clock().now())})

        @app.delete("/sim/v1/weather")
        def sim_clear_weather():
            obs.weather.clear_override()
            return jsonify({"override": {}, "weather": obs.weather.values_at(get_clock().now())})

        @app.get("/sim/v1/faults")
        def sim_faults():
            return jsonify(obs.faults.to_list())

        @app.post("/sim/v1/faults")
        def sim_add_fault():
            body = self._body(FaultRequest)
            if obs.device(body.device, body.device_number) is None:
                return problem(422, "Validation failed", f"no {body.device} number {body.device_number} in the simulator")
            fault = obs.faults.add(Fault(device=body.device, kind=body.kind, device_number=body.device_number, duration=body.duration))
            return jsonify(fault.to_dict()), 201

        @app.delete("/sim/v1/faults")
        def sim_clear_faults():
            device = request.args.get("device")
            number = request.args.get("device_number")
            removed = obs.faults.clear(device, int(number) if number and number.isdigit() else None)
            return jsonify({"removed": removed})

        @app.get("/sim/v1/truth")
        def sim_truth_ids():
            return jsonify(obs.truths.ids())

        @app.get("/sim/v1/truth/<truth_id>")
        def sim_truth(truth_id: str):
            record = obs.truths.get(truth_id)
            if record is None:
                return problem(404, "Not found", f"no truth record {truth_id!r} (kept: the last {obs.truths.keep} frames)")
            return jsonify(record)


class _Problem(Exception):
    def __init__(self, response: Response):
        super().__init__("problem")
        self.response = response


class WeatherUpdate(WeatherValues):
    """Live weather override: any quantity; null removes that override."""


class FaultRequest(BaseModel):
    """A fault to inject now."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(pattern="^(" + "|".join(DEVICE_TYPES) + ")$")
    device_number: int = Field(0, ge=0)
    kind: str = Field(pattern="^(" + "|".join(FAULT_KINDS) + ")$")
    duration: float | None = Field(None, gt=0, description="simulated seconds; null: until cleared")


def create_app(observatory: Observatory | None = None, *, scenario=None, token: str | None = None, alpaca_token: str | None = None) -> Flask:
    """Build the simulator's Flask app (Alpaca + management + /sim/v1); ``app.config['SIM']`` is the server.

    ``alpaca_token`` guards the Alpaca device control (PUT) routes too; ``rosace sim serve``
    sets it whenever the server listens beyond this machine.
    """
    from rosace_core.astro import load_earth_orientation

    # The mount and the renderer need UT1 and polar motion: read the IERS table
    # now and free what reading it left (60-90 MB kept otherwise).
    load_earth_orientation()
    obs = observatory or Observatory(scenario)
    server = AlpacaServer(obs, token=token, alpaca_token=alpaca_token)
    server.app.config["SIM"] = server
    server.app.config["OBSERVATORY"] = obs
    return server.app
