"""Schema-driven fuzzing of the share API's OpenAPI document: no input gives a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, settings  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_fuzz_openapi_no_server_error(app, make_bess):
    archive = app.extensions["rosace_share"].archive
    archive.add(make_bess(), owner="observatory")  # something to find, download and try to break
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema = schema.include(path_regex="^/api/v1/share")
    failures = []
    count = 0
    codes: dict[int, int] = {}
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case):
            nonlocal count
            count += 1
            case.headers = {**(case.headers or {}), "Authorization": "Bearer admin-token-for-tests"}
            response = case.call()
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        from hypothesis import given

        given(op.as_strategy())(check)()
    assert count > 100 and codes.get(200, 0) + codes.get(201, 0) > 20, codes
    assert failures == [], failures
    print(codes)
