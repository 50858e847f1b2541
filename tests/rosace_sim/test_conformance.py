"""The simulator against the official ASCOM Alpaca OpenAPI files (schema-driven, schemathesis).

For every operation of the device and management APIs that the simulator
implements, schemathesis draws a few valid requests from the spec; each answer
must not be a 5xx, must use a documented status code and content type, and must
match the documented response schema. Hand-written negative requests (missing or
unparseable values, bad paths) must give HTTP 400. The spec is read from
``../shared/alpaca-spec`` (relative to the repository root) or ``ROSACE_ALPACA_SPEC``.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = Path(os.environ.get("ROSACE_ALPACA_SPEC") or (REPO.parent / "shared" / "alpaca-spec"))
DEVICE_SPEC = SPEC_DIR / "AlpacaDeviceAPI_v1.yaml"
MANAGEMENT_SPEC = SPEC_DIR / "AlpacaManagementAPI_v1.yaml"

pytestmark = pytest.mark.skipif(
    not DEVICE_SPEC.exists() or not MANAGEMENT_SPEC.exists(),
    reason=f"official Alpaca OpenAPI files not found in {SPEC_DIR} (set ROSACE_ALPACA_SPEC to the folder holding AlpacaDeviceAPI_v1.yaml)",
)

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install 'rosace[dev]')")

OURS = {"camera": (0, 1), "dome": (0,), "telescope": (0,), "switch": (0,), "safetymonitor": (0,), "observingconditions": (0,), "focuser": (0,)}
EXAMPLES_PER_OPERATION = 2


@pytest.fixture(scope="module")
def conformance_sim(tmp_path_factory):
    """A simulator with a small spectrograph sensor (fast frames) and a very fast clock."""
    from rosace_core.resources import resource_path

    from rosace_sim.testing import SimObservatory

    folder = tmp_path_factory.mktemp("instrument")
    text = resource_path("instruments", "alpy600.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    text = text.replace(f"nx = {data['detector']['nx']}", "nx = 300").replace(f"ny = {data['detector']['ny']}", "ny = 200")
    text = text.replace(f"trace_row = {data['geometry']['trace_row']}", "trace_row = 100.0")
    small = folder / "small.toml"
    small.write_text(text, encoding="utf-8")
    scenario = {"clock": {"start": "2025-01-15T20:00:00Z", "rate": 200}, "instrument": str(small), "shelter": {"shutter_time": 5}}
    with SimObservatory(scenario) as sim:
        yield sim


def _implemented(sim, path: str, method: str) -> list[dict]:
    """Path parameters that make the operation one the simulator serves (empty: not served)."""
    parts = path.strip("/").split("/")
    member = parts[-1]
    prefix = "get" if method == "get" else "put"
    targets = []
    types = OURS if parts[0] == "{device_type}" else {parts[0]: OURS.get(parts[0], ())}
    for dtype, numbers in types.items():
        for n in numbers:
            dev = sim.observatory.device(dtype, n)
            if dev is not None and hasattr(dev, f"{prefix}_{member}"):
                targets.append({"device_type": dtype, "device_number": n} if parts[0] == "{device_type}" else {"device_number": n})
    return targets


def _checks():
    from schemathesis import checks

    return [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance, checks.response_schema_conformance]


def _run_operations(sim, spec_path: Path) -> tuple[int, list[str]]:

    schema = schemathesis.openapi.from_path(str(spec_path))
    served = 0
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        op = result.ok()
        method = op.method.lower()
        if op.path.startswith("/setup"):
            continue
        if spec_path == MANAGEMENT_SPEC:
            targets = [{}]
        else:
            targets = _implemented(sim, op.path, method)
        if not targets:
            continue
        served += 1
        for target in targets:
            _run_one(sim, op, target, session, failures, "" if spec_path == MANAGEMENT_SPEC else "/api/v1")
    return served, failures


def _run_one(sim, op, target: dict, session, failures: list[str], base: str) -> None:
    from hypothesis import HealthCheck, given, settings

    method = op.method.lower()
    if True:
        if True:
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def run(case):
                # Keep every device connected so each call reaches the device logic.
                for dev in sim.observatory.devices.values():
                    dev._connected = True
                if target:
                    case.path_parameters = dict(case.path_parameters or {}, **target)
                if case.path_parameters and "device_number" in (case.path_parameters or {}) and not target:
                    case.path_parameters["device_number"] = 0
                response = case.call(base_url=sim.url + base, session=session, timeout=20)
                try:
                    case.validate_response(response, checks=_checks())
                except BaseException as exc:  # collect every failure (groups too), report them together
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    failures.append(f"{method.upper()} {op.path} {target}: {str(exc)[:400]}")

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run()


def test_device_api_matches_the_official_schema(conformance_sim):
    served, failures = _run_operations(conformance_sim, DEVICE_SPEC)
    assert served > 150, f"only {served} operations exercised"
    assert not failures, "\n".join(failures[:20])


def test_management_api_matches_the_official_schema(conformance_sim):
    served, failures = _run_operations(conformance_sim, MANAGEMENT_SPEC)
    assert served >= 3
    assert not failures, "\n".join(failures)
    devices = requests.get(f"{conformance_sim.url}/management/v1/configureddevices", timeout=30).json()["Value"]
    assert {(d["DeviceType"], d["DeviceNumber"]) for d in devices} == {
        ("Dome", 0), ("Telescope", 0), ("Camera", 0), ("Camera", 1), ("Switch", 0), ("SafetyMonitor", 0), ("ObservingConditions", 0),
        ("Focuser", 0)}


@pytest.mark.parametrize(
    "method, path, data",
    [
        ("GET", "/api/v1/telescope/x/rightascension", None),            # device number not a number
        ("GET", "/api/v1/telescope/7/rightascension", None),            # no such device
        ("GET", "/api/v1/rotator/0/position", None),                    # device type not served
        ("PUT", "/api/v1/focuser/0/move", {"Position": "12.5"}),         # a step count is an integer
        ("GET", "/api/v1/telescope/0/nosuchmember", None),              # unknown member
        ("GET", "/api/v1/Telescope/0/rightascension", None),            # URLs are lower case
        ("PUT", "/api/v1/telescope/0/slewtocoordinatesasync", {"RightAscension": "abc", "Declination": "10"}),
        ("PUT", "/api/v1/telescope/0/slewtocoordinatesasync", {"RightAscension": "5"}),  # missing parameter
        ("PUT", "/api/v1/camera/0/startexposure", {"Duration": "1", "Light": "maybe"}),
        ("PUT", "/api/v1/switch/0/setswitch", {"Id": "1.5", "State": "true"}),
        ("GET", "/api/v1/switch/0/getswitch", None),                    # missing Id
        ("GET", "/api/v1/dome/0/shutterstatus?ClientTransactionID=-4", None),
        ("GET", "/api/v1/dome/0/shutterstatus?ClientID=abc", None),
        ("GET", "/management/v1/configureddevices?ClientTransactionID=x", None),
    ],
)
def test_bad_values_and_paths_give_400(conformance_sim, method, path, data):
    resp = requests.request(method, conformance_sim.url + path, data=data, timeout=30)
    assert resp.status_code == 400, resp.text
    assert resp.text


def test_alpaca_envelope_rules(conformance_sim):
    url = conformance_sim.url + "/api/v1/dome/0"
    requests.put(url + "/connected", data={"connected": "TRUE", "clienttransactionid": "77"}, timeout=30)
    first = requests.get(url + "/shutterstatus", params={"CLIENTTRANSACTIONID": "12", "clientid": "3"}, timeout=30).json()
    second = requests.get(url + "/shutterstatus", params={"ClientTransactionID": "13"}, timeout=30).json()
    assert first["ClientTransactionID"] == 12 and second["ClientTransactionID"] == 13  # names case-insensitive, echoed
    assert second["ServerTransactionID"] > first["ServerTransactionID"] >= 1
    assert first["ErrorNumber"] == 0 and first["ErrorMessage"] == ""
    # No (or a zero) client transaction id: none is echoed (the schema wants >= 1).
    assert "ClientTransactionID" not in requests.get(url + "/shutterstatus", params={"ClientTransactionID": "0"}, timeout=30).json()
    # An ASCOM error is HTTP 200 with its number and message.
    resp = requests.put(url + "/slewtoazimuth", data={"Azimuth": "10"}, timeout=30)
    assert resp.status_code == 200 and resp.json()["ErrorNumber"] == 0x400 and resp.json()["ErrorMessage"]
    # A GET-only member refuses PUT.
    assert requests.put(url + "/shutterstatus", timeout=30).status_code == 405
