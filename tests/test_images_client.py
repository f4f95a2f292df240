"""The image client over real HTTP against the simulator: flow, headers, polling, every fault."""

import threading
import time

import pytest
import requests

from modelscope_api import errors, wire
from modelscope_api.config import fingerprint
from modelscope_api.images import ImageClient, ImageRequest, PollSchedule
from modelscope_api.simulator import SimConfig, Simulator

TOKEN = "ms-test-images-client"
FAST = PollSchedule(initial=0.05, factor=1.2, maximum=0.3)


@pytest.fixture(scope="module")
def sim():
    with Simulator(SimConfig(task_seconds=0.4, ttft=0.01, tokens_per_second=5000)) as s:
        yield s


pytestmark = pytest.mark.usefixtures("fresh_sim")  # conftest: no faults, empty log per test


def client(sim, token=TOKEN, **kw):
    kw.setdefault("schedule", FAST)
    return ImageClient(token, sim.base_url, **kw)


def cat(**kw):
    base = {"model": "Qwen/Qwen-Image", "prompt": "一只金色的猫", "width": 256, "height": 256}
    base.update(kw)
    return ImageRequest(**base)


def test_generate_returns_the_served_bytes_and_the_seed(sim):
    updates = []
    result = client(sim).generate(cat(seed=7, loras=[("a/b", 0.6), ("c/d", 0.4)]),
                                  on_status=updates.append)
    assert result.seed == 7 and result.task_id and result.polls >= 1
    assert len(result.images) == 1
    served = requests.get(result.images[0].url, timeout=10)
    assert result.images[0].data == served.content  # original bytes, not re-encoded
    assert result.images[0].data.startswith(b"\x89PNG") and result.images[0].extension == "png"
    assert result.parameters.get("seed") == 7
    assert result.time_taken_ms and result.time_taken_ms > 0
    statuses = [u.status for u in updates]
    assert statuses[0] == wire.STATUS_SUBMITTED and statuses[-1] == wire.STATUS_SUCCEED
    assert set(statuses[1:-1]) <= wire.RUNNING_STATUSES
    assert [u.polls for u in updates] == list(range(len(updates)))
    assert result.quota and result.quota.requests_remaining is not None
    record = result.to_record()
    assert record["task_id"] == result.task_id and record["request"]["loras"] == {"a/b": 0.6, "c/d": 0.4}


def test_server_chooses_a_seed_when_none_is_given(sim):
    result = client(sim).generate(cat())
    assert isinstance(result.seed, int) and 0 <= result.seed < 2**31


def test_wire_headers_and_body(sim):
    client(sim).generate(cat(seed=1, loras="owner/one-lora"))
    log = sim.log
    post = [r for r in log if r.method == "POST"]
    assert len(post) == 1
    assert post[0].headers.get(wire.ASYNC_MODE_HEADER.lower()) == "true" or \
        post[0].headers.get(wire.ASYNC_MODE_HEADER) == "true"
    assert post[0].json["loras"] == "owner/one-lora" and post[0].json["size"] == "256x256"
    polls = [r for r in log if r.method == "GET" and "/v1/tasks/" in r.path]
    assert polls and all(
        (r.headers.get(wire.TASK_TYPE_HEADER.lower()) or r.headers.get(wire.TASK_TYPE_HEADER))
        == wire.TASK_TYPE_IMAGE for r in polls)
    assert all(r.token_fingerprint == fingerprint(TOKEN) for r in post + polls)
    downloads = [r for r in log if "/_sim/files/" in r.path]
    assert downloads and all(not r.token_fingerprint or r.token_fingerprint == "none" for r in downloads)
    assert all(TOKEN not in repr(r) for r in log)


def test_same_seed_same_bytes(sim):
    a = client(sim).generate(cat(seed=99)).images[0].data
    b = client(sim).generate(cat(seed=99)).images[0].data
    c = client(sim).generate(cat(seed=100)).images[0].data
    assert a == b and a != c


def test_validation_sends_nothing(sim):
    for bad in (cat(prompt=""), cat(width=5000), cat(seed=-1), cat(steps=101),
                cat(guidance=1.4), cat(loras=[("a/b", 0.5), ("c/d", 0.4)])):
        with pytest.raises(errors.ValidationError):
            client(sim).generate(bad)
    assert sim.log == []


def test_missing_token_sends_nothing(sim, monkeypatch):
    for name in ("MODELSCOPE_ACCESS_TOKEN", "MODELSCOPE_API_TOKEN", "MODELSCOPE_SDK_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(errors.MissingTokenError):
        ImageClient(None, sim.base_url).generate(cat())
    assert sim.log == []


@pytest.mark.parametrize("token,cls", [
    ("not-a-token", errors.AuthenticationError),
    ("ms-test-unbound", errors.AccountNotBoundError),
    ("ms-test-unverified", errors.PermissionDeniedError),
    ("ms-test-quota", errors.RateLimitError),
])
def test_account_errors(sim, token, cls):
    with pytest.raises(cls) as info:
        client(sim, token).generate(cat())
    assert info.value.message and info.value.hint and info.value.status in (401, 403, 429)
    assert info.value.request_id


def test_unknown_model_is_the_servers_400(sim):
    with pytest.raises(errors.InvalidRequestError) as info:
        client(sim).generate(cat(model="nobody/nothing"))
    assert "has no provider supported" in info.value.message


@pytest.mark.parametrize("fault,cls", [("500", errors.ServerError), ("502", errors.ServerError),
                                       ("429", errors.RateLimitError)])
def test_submit_is_never_blindly_retried(sim, fault, cls):
    sim.inject(fault, scope="images", times=1)
    with pytest.raises(cls):
        client(sim).generate(cat())
    assert len([r for r in sim.log if r.method == "POST"]) == 1
    client(sim).generate(cat())  # the next normal request works


@pytest.mark.parametrize("fault", ["500", "502"])
def test_transient_poll_failures_are_retried(sim, fault):
    sim.inject(fault, scope="task", times=1)
    result = client(sim).generate(cat())
    assert result.images


def test_task_failed_carries_the_servers_reason(sim):
    sim.inject("task_failed", times=1)
    with pytest.raises(errors.TaskFailedError) as info:
        client(sim).generate(cat())
    assert "inappropriate" in info.value.message and info.value.task_id


def test_an_early_spurious_failed_is_rechecked(sim):
    sim.inject("spurious_failed", times=1)
    assert client(sim).generate(cat()).images


def test_timeout_names_the_task(sim):
    sim.inject("task_never_finishes", times=1)
    with pytest.raises(errors.TaskTimeoutError) as info:
        client(sim, timeout=0.8).generate(cat())
    assert info.value.task_id and info.value.task_id in str(info.value)


def test_cancel_stops_polling_at_once(sim):
    sim.inject("task_never_finishes", times=1)
    cancel = threading.Event()
    slow = PollSchedule(initial=2.0, factor=1.0, maximum=2.0)
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(errors.TaskCancelledError):
        client(sim, schedule=slow).generate(cat(), cancel=cancel)
    # woke on the event, not after the 2 s poll interval
    assert time.monotonic() - started < 1.5


def test_image_404(sim):
    sim.inject("image_404", times=1)
    with pytest.raises(errors.ImageDownloadError) as info:
        client(sim).generate(cat())
    assert info.value.status == 404 and info.value.task_id and "404" in str(info.value)


def test_task_not_found(sim):
    sim.inject("task_not_found", times=1)
    with pytest.raises(errors.TaskNotFoundError) as info:
        client(sim).generate(cat())
    assert "not found" in str(info.value).lower() and info.value.task_id


def test_connection_refused():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(errors.APIConnectionError):
        ImageClient(TOKEN, f"http://127.0.0.1:{port}/", schedule=FAST).generate(cat())


def test_quota_goes_down(sim):
    a = client(sim, "ms-test-quota-counter").generate(cat()).quota
    b = client(sim, "ms-test-quota-counter").generate(cat()).quota
    assert b.requests_remaining == a.requests_remaining - 1
    assert b.model_requests_remaining == a.model_requests_remaining - 1


def test_polls_for_a_one_second_task_with_default_schedule(sim):
    sim.set_config(task_seconds=1.0)
    try:
        result = ImageClient(TOKEN, sim.base_url).generate(cat())
    finally:
        sim.set_config(task_seconds=0.4)
    assert result.polls <= 6  # 0.25, 0.52, 0.81, 1.13 s … : seen within ~0.3 s of finishing
