"""Error bodies in both shapes → one class per meaning; token and base URL resolution."""

import pytest

from modelscope_api import config, errors
from modelscope_api.quota import Quota

ERRORS_SHAPE = {"errors": {"message": "M", "code": 7}, "request_id": "rid-1"}
ERROR_SHAPE = {"error": {"message": "M", "code": "c", "type": "t"}, "request_id": "rid-1"}


@pytest.mark.parametrize("body", [ERRORS_SHAPE, ERROR_SHAPE])
@pytest.mark.parametrize("status,cls", [
    (400, errors.InvalidRequestError), (401, errors.AuthenticationError),
    (403, errors.PermissionDeniedError), (429, errors.RateLimitError),
    (500, errors.ServerError), (502, errors.ServerError), (503, errors.ServerError),
])
def test_both_shapes_every_status(body, status, cls):
    err = errors.error_from_response(status, body)
    assert type(err) is cls
    assert err.status == status and err.message == "M" and err.request_id == "rid-1"
    assert err.hint


def test_unbound_aliyun_is_its_own_class():
    body = {"errors": {"message": "Please bind your Alibaba Cloud account before use."}}
    err = errors.error_from_response(401, body)
    assert isinstance(err, errors.AccountNotBoundError) and isinstance(err, errors.AuthenticationError)
    assert "Aliyun" in err.hint


def test_non_json_and_empty_bodies():
    err = errors.error_from_response(502, "<html>Bad Gateway</html>")
    assert isinstance(err, errors.ServerError) and "Bad Gateway" in err.message
    assert errors.error_from_response(500, None).message == "HTTP 500"
    assert errors.error_from_response(429, b'{"error":{"message":"\xe8\xbe\xbe"}}').message


def test_quota_rides_on_errors():
    headers = {"modelscope-ratelimit-requests-remaining": "0", "modelscope-ratelimit-requests-limit": "2000"}
    err = errors.error_from_response(429, ERROR_SHAPE, headers)
    assert err.quota == Quota(2000, 0, None, None)
    assert Quota.from_headers({"content-type": "x"}) is None


def test_token_resolution_order(monkeypatch):
    for name in config.TOKEN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert config.resolve_token() is None
    monkeypatch.setenv("MODELSCOPE_SDK_TOKEN", "ms-test-sdk")
    assert config.resolve_token() == "ms-test-sdk"
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", "ms-test-api")
    assert config.resolve_token() == "ms-test-api"
    monkeypatch.setenv("MODELSCOPE_ACCESS_TOKEN", "ms-test-access")
    assert config.resolve_token() == "ms-test-access"
    assert config.resolve_token("ms-test-explicit") == "ms-test-explicit"
    assert config.resolve_token("   ") == "ms-test-access"


def test_base_url(monkeypatch):
    monkeypatch.delenv(config.BASE_URL_ENV_VAR, raising=False)
    assert config.resolve_base_url() == "https://api-inference.modelscope.cn/"
    monkeypatch.setenv(config.BASE_URL_ENV_VAR, "http://127.0.0.1:9/v1")
    assert config.resolve_base_url() == "http://127.0.0.1:9/"
    assert config.chat_base_url(config.resolve_base_url()) == "http://127.0.0.1:9/v1/"
    assert config.resolve_base_url("http://h:1") == "http://h:1/"
    with pytest.raises(ValueError):
        config.resolve_base_url("h:1")


def test_settings_repr_hides_the_token():
    s = config.Settings("ms-test-secret-123", "http://x/")
    assert "ms-test-secret-123" not in repr(s)
    assert config.fingerprint("ms-test-secret-123") in repr(s)
