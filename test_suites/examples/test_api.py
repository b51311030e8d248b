"""A pytest suite: ordinary tests, with Greenlight's fixtures.

In the hook: one check per test. On a laptop:
    pytest test_suites/test_api.py --target-url http://127.0.0.1:8080
"""


def test_health_reports_ok(http, base_url):
    response = http.get(f"{base_url}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_unknown_route_is_json_404(http, base_url):
    response = http.get(f"{base_url}/no-such-route")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")


def test_requests_identify_the_deployment(http, deployment):
    assert http.headers["User-Agent"].startswith("greenlight/")
    assert http.headers["X-Greenlight-Deployment-Id"] == deployment.deployment_id
