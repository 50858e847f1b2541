"""The simulator's Alpaca side under hostile input (regressions of the interface audit, issue #20)."""

from __future__ import annotations

import pytest
import requests

from rosace_sim.testing import SimObservatory

SCENARIO = {"clock": {"start": "2025-01-15T20:00:00Z", "rate": 50}}


@pytest.fixture(scope="module")
def sim():
    with SimObservatory(SCENARIO) as s:
        yield s


@pytest.mark.parametrize("number", ["%C2%B2", "%EF%BC%90", "%D9%A0", "0x0", "-0", " 0"])
def test_device_numbers_are_ascii_digits_only(sim, number):
    """A superscript two, a fullwidth or Arabic-Indic zero gave HTTP 500 or reached device 0."""
    for dtype in ("dome", "telescope", "camera", "switch", "safetymonitor", "observingconditions"):
        r = requests.get(f"{sim.url}/api/v1/{dtype}/{number}/name", timeout=10)
        assert r.status_code == 400, (dtype, number, r.status_code, r.text)
    r = requests.get(f"{sim.url}/setup/v1/dome/{number}/setup", timeout=10)
    assert r.status_code == 403


@pytest.mark.parametrize("ctid", ["+5", "1_2", "\uff15", "5.0", "-1", "4294967296"])
def test_transaction_ids_are_plain_unsigned_integers(sim, ctid):
    r = requests.get(f"{sim.url}/api/v1/dome/0/name", params={"ClientTransactionID": ctid}, timeout=10)
    assert r.status_code == 400, (ctid, r.text)
    r = requests.get(f"{sim.url}/management/apiversions", params={"ClientTransactionID": ctid}, timeout=10)
    assert r.status_code == 400, (ctid, r.text)


@pytest.mark.parametrize("value", ["1_0", "\uff11", "nan", "inf", "1e999"])
def test_numeric_values_are_ascii_numbers(sim, value):
    r = requests.put(f"{sim.url}/api/v1/telescope/0/guideraterightascension", data={"GuideRateRightAscension": value}, timeout=10)
    assert r.status_code == 400, (value, r.status_code, r.text)


def test_interface_members_not_offered_are_not_implemented(sim):
    """ISwitchV3's cancelasync exists in the interface: 200 with ASCOM NotImplemented, not HTTP 400."""
    r = requests.put(f"{sim.url}/api/v1/switch/0/cancelasync", data={"Id": 0, "ClientTransactionID": 7}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["ErrorNumber"] == 0x400 and body["ClientTransactionID"] == 7 and "cancelasync" in body["ErrorMessage"]
    # A name that is no member at all stays a bad request.
    assert requests.put(f"{sim.url}/api/v1/switch/0/nosuchmember", data={"Id": 0}, timeout=10).status_code == 400


def test_405_names_the_allowed_methods(sim):
    r = requests.put(f"{sim.url}/api/v1/dome/0/shutterstatus", data={}, timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = requests.post(f"{sim.url}/management/apiversions", timeout=10)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


def test_deeply_nested_json_is_a_bad_request(sim):
    body = "[" * 100_000 + "]" * 100_000
    r = requests.put(f"{sim.url}/sim/v1/weather", data=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {sim.token}"}, timeout=30)
    assert r.status_code == 400, r.text[:200]


def test_alpaca_control_needs_the_token_when_guarded():
    with SimObservatory(SCENARIO, alpaca_token="s3cret") as s:
        url = f"{s.url}/api/v1/dome/0/openshutter"
        assert requests.put(url, timeout=10).status_code == 401
        assert requests.put(url, auth=("anyone", "wrong"), timeout=10).status_code == 401
        assert requests.put(url, auth=("anyone", "s3cret"), timeout=10).status_code == 200
        assert requests.put(url, headers={"Authorization": "Bearer s3cret"}, timeout=10).status_code == 200
        # Reading stays open (status displays, discovery tools).
        assert requests.get(f"{s.url}/api/v1/dome/0/shutterstatus", timeout=10).status_code == 200


def test_serve_beyond_loopback_guards_alpaca_control():
    """``rosace sim serve --host 0.0.0.0`` guards the Alpaca routes unless --open-alpaca says otherwise."""
    import argparse

    from rosace_sim.cli import add_arguments, alpaca_guard

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["serve", "--host", "0.0.0.0"])
    assert alpaca_guard(args.host, "tok", open_alpaca=args.open_alpaca) == "tok"
    assert alpaca_guard("192.168.1.10", "tok") == "tok"
    assert alpaca_guard("0.0.0.0", "tok", open_alpaca=parser.parse_args(["serve", "--open-alpaca"]).open_alpaca) is None
    for host in ("127.0.0.1", "::1", "localhost"):
        assert alpaca_guard(host, "tok") is None


def test_rosace_devices_reach_a_guarded_server_with_credentials_in_the_url():
    """The adapter sends HTTP Basic from ``http://user:token@host:port``; messages hide the token."""
    from rosace_core.alpaca import Dome, redact_url
    from rosace_core.errors import DeviceError

    with SimObservatory(SCENARIO, alpaca_token="s3cret") as s:
        host = s.url.removeprefix("http://")
        guarded = Dome(f"http://rosace:s3cret@{host}", 0, retries=1)
        guarded.connect()
        guarded.open_shutter()
        assert "s3cret" not in guarded.label and "rosace:***@" in guarded.label
        anonymous = Dome(s.url, 0, retries=1)
        with pytest.raises(DeviceError):
            anonymous.close_shutter()
    assert redact_url("http://u:pw@h:1/x") == "http://u:***@h:1/x" and redact_url("http://h:1") == "http://h:1"


def test_a_written_slew_settle_time_is_read_back_and_used_by_slews():
    """SlewSettleTime writes were stored where nothing read them."""
    with SimObservatory(SCENARIO) as s:
        base = f"{s.url}/api/v1/telescope/0"
        for member, data in (("connected", {"Connected": "True"}), ("unpark", {}), ("tracking", {"Tracking": "True"}),
                             ("slewsettletime", {"SlewSettleTime": "25"})):
            r = requests.put(f"{base}/{member}", data=data, timeout=10)
            assert r.status_code == 200 and r.json()["ErrorNumber"] == 0, (member, r.text)
        assert requests.get(f"{base}/slewsettletime", timeout=10).json()["Value"] == 25
        lst = requests.get(f"{base}/siderealtime", timeout=10).json()["Value"]
        r = requests.put(f"{base}/slewtocoordinatesasync", data={"RightAscension": str(round((lst - 1.0) % 24, 4)), "Declination": "30"}, timeout=10)
        assert r.status_code == 200 and r.json()["ErrorNumber"] == 0, r.text
        slew = s.observatory.device("telescope", 0)._slew
        assert abs((slew["end"] - slew["start"]) - (slew["move"] + 25.0)) < 1e-6
