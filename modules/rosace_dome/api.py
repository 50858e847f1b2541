"""REST API of the dome module (``/api/v1/dome``), contract in docs/dev/contracts.md.

``create_app`` builds the shelter controller from the configuration and starts
its safety loop at once: the loop runs in its own thread whether or not anyone
calls the API. The controller is ``app.extensions["rosace_dome"]``.
"""

from __future__ import annotations

from flask import current_app, request
from pydantic import BaseModel, ConfigDict, Field

from rosace_core.jobs import JobRunner
from rosace_core.rest import Api, ProblemError, create_module_app
from rosace_dome.leases import LeaseError
from rosace_dome.shelter import Shelter, ShelterDevices

api = Api("dome", "Dome", "Dome and shelter control: the safety authority")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandRequest(_Body):
    """Optional body of open/close/park/home."""

    reason: str = Field("", max_length=500, description="why (kept in the event log)")
    source: str = Field("", max_length=100, description="who asks (e.g. sequencer, desktop)")


class LeaseRequest(_Body):
    holder: str = Field(..., min_length=1, max_length=100, description="who wants the roof open (e.g. sequencer)")
    duration: float = Field(..., gt=0, description="seconds of observatory clock time until the lease runs out")


class LeaseRenewal(_Body):
    duration: float = Field(..., gt=0, description="seconds from now")


class MaintenanceRequest(_Body):
    locked: bool
    reason: str = Field("", max_length=500)


class EventsQuery(_Body):
    since: int = Field(0, ge=0, description="only events with a larger sequence number")
    limit: int = Field(200, ge=1, le=2000)
    kind: str | None = Field(None, description="shelter, verdict, command, lease, alarm, maintenance, mount, reconcile ...")


class ShelterInfo(BaseModel):
    type: str
    state: str = Field(description="open, closed, opening, closing, error or unknown")
    device_state: str | None = None
    azimuth: float | None = None
    moving: str | None = None
    error: str | None = None
    action: dict | None = None


class VerdictInfo(BaseModel):
    safe: bool
    reasons: list[str]
    codes: list[str] = []
    since: str | None = None
    checked: str | None = None


class SensorInfo(BaseModel):
    name: str
    value: float | bool | None
    unit: str = ""
    limit: dict
    max_age: float | None = None
    age: float | None = None
    ok: bool
    reason: str = ""


class LeaseInfo(BaseModel):
    id: str
    holder: str
    acquired: str
    expires: str
    remaining: float | None = None


class AlarmInfo(BaseModel):
    id: int
    code: str
    message: str
    raised: str
    active: bool
    cleared: str | None = None


class DomeStatus(BaseModel):
    """``GET /status``."""

    time: str
    shelter: ShelterInfo
    safe: bool
    verdict: VerdictInfo
    sensors: list[SensorInfo]
    mount: dict
    leases: list[LeaseInfo]
    alarms: list[AlarmInfo]
    maintenance: bool
    maintenance_reason: str = ""
    reopen_at: str | None = None
    can_open: bool
    poll: dict


class EventInfo(BaseModel):
    seq: int
    time: str
    kind: str
    message: str
    data: dict = {}


class JobInfo(BaseModel):
    id: str
    kind: str
    state: str
    message: str = ""
    fraction: float = 0.0
    result: object = None
    error: str | None = None
    created: str
    finished: str | None = None
    params: dict = {}


def shelter() -> Shelter:
    """The shelter controller of the current app."""
    return current_app.extensions["rosace_dome"]


def _source(body: CommandRequest | None = None) -> str:
    return (body.source if body and body.source else None) or f"client {request.remote_addr}"


@api.route("/status", response=DomeStatus, summary="Shelter state, safety verdict with reasons, sensors, mount, leases, alarms")
def status():
    return shelter().status()


@api.route("/open", methods=("POST",), body=CommandRequest, response=JobInfo, status=202, summary="Open the roof (409 with reasons when unsafe, locked or too soon)")
def open_roof(body: CommandRequest):
    return shelter().open(_source(body)).to_dict()


@api.route("/close", methods=("POST",), body=CommandRequest, response=JobInfo, status=202, summary="Park the mount, then close")
def close_roof(body: CommandRequest):
    return shelter().close(body.reason or "requested", _source(body)).to_dict()


@api.route("/park", methods=("POST",), body=CommandRequest, response=JobInfo, status=202, summary="Park the mount (and a rotating dome)")
def park(body: CommandRequest):
    return shelter().park(_source(body)).to_dict()


@api.route("/home", methods=("POST",), body=CommandRequest, response=JobInfo, status=202, summary="Find the dome's home position")
def home(body: CommandRequest):
    return shelter().home(_source(body)).to_dict()


def _lease_problem(exc: LeaseError) -> ProblemError:
    return ProblemError(422, "Validation failed", str(exc), [{"field": "duration", "message": str(exc), "in": "body"}])


@api.route("/leases", response=[LeaseInfo], summary="Current leases")
def list_leases():
    s = shelter()
    return [lease.to_dict(s.now()) for lease in s.leases.active()]


@api.route("/leases", methods=("POST",), body=LeaseRequest, response=LeaseInfo, status=201, summary="Take a lease: keep the roof open while safe")
def acquire_lease(body: LeaseRequest):
    s = shelter()
    try:
        return s.acquire_lease(body.holder, body.duration).to_dict(s.now())
    except LeaseError as exc:
        raise _lease_problem(exc) from None


@api.route("/leases/<lease_id>", methods=("PUT",), body=LeaseRenewal, response=LeaseInfo, summary="Renew a lease")
def renew_lease(lease_id: str, body: LeaseRenewal):
    s = shelter()
    try:
        return s.renew_lease(lease_id, body.duration).to_dict(s.now())
    except LeaseError as exc:
        raise _lease_problem(exc) from None


@api.route("/leases/<lease_id>", methods=("DELETE",), response=LeaseInfo, summary="Release a lease")
def release_lease(lease_id: str):
    return shelter().release_lease(lease_id).to_dict()


@api.route("/maintenance", summary="The maintenance lock")
def get_maintenance():
    s = shelter()
    return {"locked": s.locked, "reason": s.lock_reason, "since": s.lock_since.isoformat() if s.lock_since else None}


@api.route("/maintenance", methods=("PUT",), body=MaintenanceRequest, summary="Set or lift the maintenance lock")
def put_maintenance(body: MaintenanceRequest):
    return shelter().set_maintenance(body.locked, body.reason, _source())


@api.route("/events", query=EventsQuery, response=[EventInfo], summary="Event log: every state change with its reason and time")
def events(query: EventsQuery):
    return [e.to_dict() for e in shelter().journal.events(query.since, query.limit, query.kind)]


@api.route("/alarms", response=[AlarmInfo], summary="Alarms, active and recently cleared")
def alarms():
    return [a.to_dict() for a in shelter().journal.alarms()]


@api.route("/alarms/acknowledge", methods=("POST",), summary="Acknowledge every alarm")
def acknowledge_alarms():
    s = shelter()
    return {"acknowledged": s.journal.acknowledge(s.now())}


api.add_job_routes(lambda: shelter().runner, response=JobInfo)


def create_app(config=None, *, token=None, shelter: Shelter | None = None, start: bool = True):
    """Build the dome module's Flask app and start its safety loop.

    ``config`` defaults to the user's configuration; ``shelter`` replaces the
    controller built from it (tests); ``start=False`` leaves the loop stopped.
    Raises ConfigError when the ``[dome]`` table is invalid.
    """
    from rosace_core.astro import configure_offline
    from rosace_core.config import app_config
    from rosace_dome.settings import load_settings

    configure_offline()
    config = app_config(config)
    app = create_module_app(api, config=config, token=token)
    if shelter is None:
        settings, shelter_type, state_file = load_settings(config)
        shelter = Shelter(
            ShelterDevices.from_config(config),
            settings,
            shelter_type=shelter_type,
            site=(config.site.latitude, config.site.longitude, config.site.elevation),
            state_file=state_file,
            runner=JobRunner(),
        )
    app.extensions["rosace_dome"] = shelter
    if start:
        shelter.start()
    return app
