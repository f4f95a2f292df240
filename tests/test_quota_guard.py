"""The teacher's quota guard: caps on the server's shared token, never on a personal token.

Unit tests of `ui.context.ServerTokenGuard` (caps, day roll-over, give_back, many threads),
then one end-to-end run through gradio_client against the launched app and the simulator.
"""

from __future__ import annotations

import datetime as real_dt
import threading
import types

import pytest

from ui import context
from ui.context import (
    DAILY_CAP_ENV,
    SESSION_CAP_ENV,
    SOURCE_HEADER,
    SOURCE_NONE,
    SOURCE_SERVER,
    SOURCE_SESSION,
    AppContext,
    QuotaCapReached,
    ServerTokenGuard,
)

# --------------------------------------------------------------------------- unit


def test_no_caps_means_disabled_and_unlimited():
    guard = ServerTokenGuard()
    assert not guard.enabled
    for _ in range(1000):
        guard.take("s")
    assert guard.remaining("s") == {"session": None, "day": None}


def test_session_cap_counts_each_session_apart():
    guard = ServerTokenGuard(session_limit=2)
    assert guard.enabled
    guard.take("a")
    assert guard.remaining("a")["session"] == 1
    guard.take("a")
    assert guard.remaining("a")["session"] == 0
    with pytest.raises(QuotaCapReached) as info:
        guard.take("a")
    assert info.value.scope == "session" and info.value.limit == 2
    assert "2" in str(info.value)
    # another student still has the whole share
    assert guard.remaining("b")["session"] == 2
    guard.take("b")
    guard.take("b")


def test_refused_call_is_not_counted():
    guard = ServerTokenGuard(session_limit=1, daily_limit=10)
    guard.take("a")
    for _ in range(5):
        with pytest.raises(QuotaCapReached):
            guard.take("a")
    assert guard.remaining("a") == {"session": 0, "day": 9}


def test_daily_cap_is_shared_by_the_class():
    guard = ServerTokenGuard(daily_limit=3)
    guard.take("a")
    guard.take("b")
    guard.take("c")
    assert guard.remaining("z")["day"] == 0
    with pytest.raises(QuotaCapReached) as info:
        guard.take("d")
    assert info.value.scope == "day" and info.value.limit == 3


def test_daily_cap_checked_before_session_cap():
    guard = ServerTokenGuard(session_limit=5, daily_limit=1)
    guard.take("a")
    with pytest.raises(QuotaCapReached) as info:
        guard.take("b")
    assert info.value.scope == "day"


def _fake_dt(today: real_dt.date) -> types.SimpleNamespace:
    class FakeDate(real_dt.date):
        @classmethod
        def today(cls):
            return today

    return types.SimpleNamespace(date=FakeDate)


def test_new_day_resets_both_counters(monkeypatch):
    guard = ServerTokenGuard(session_limit=1, daily_limit=2)
    guard.take("a")
    guard.take("b")
    with pytest.raises(QuotaCapReached):
        guard.take("c")
    with pytest.raises(QuotaCapReached):
        guard.take("a")

    tomorrow = real_dt.date.today() + real_dt.timedelta(days=1)
    monkeypatch.setattr(context, "_dt", _fake_dt(tomorrow))
    assert guard.remaining("a") == {"session": 1, "day": 2}
    guard.take("a")
    guard.take("c")
    with pytest.raises(QuotaCapReached):
        guard.take("d")


def test_same_day_does_not_reset(monkeypatch):
    guard = ServerTokenGuard(daily_limit=1)
    guard.take("a")
    monkeypatch.setattr(context, "_dt", _fake_dt(real_dt.date.today()))
    with pytest.raises(QuotaCapReached):
        guard.take("a")


def test_give_back_undoes_a_take():
    guard = ServerTokenGuard(session_limit=2, daily_limit=5)
    guard.take("a")
    guard.take("a")
    guard.give_back("a")
    assert guard.remaining("a") == {"session": 1, "day": 4}
    guard.take("a")
    with pytest.raises(QuotaCapReached):
        guard.take("a")


def test_give_back_never_goes_below_zero_or_credits_a_stranger():
    guard = ServerTokenGuard(session_limit=2, daily_limit=3)
    guard.give_back("nobody")
    assert guard.remaining("nobody") == {"session": 2, "day": 3}
    guard.take("a")
    guard.give_back("b")  # b took nothing: a's count and the day's stay
    assert guard.remaining("a") == {"session": 1, "day": 2}


def test_many_threads_never_exceed_the_daily_cap():
    guard = ServerTokenGuard(daily_limit=100)
    granted = []
    lock = threading.Lock()
    start = threading.Barrier(40)

    def student(i: int) -> None:
        start.wait()
        mine = 0
        for _ in range(10):
            try:
                guard.take(f"s{i}")
                mine += 1
            except QuotaCapReached:
                pass
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100
    assert guard.remaining("any")["day"] == 0


def test_many_threads_one_session_get_exactly_the_session_cap():
    guard = ServerTokenGuard(session_limit=7, daily_limit=1000)
    ok = []
    start = threading.Barrier(32)

    def tab() -> None:
        start.wait()
        for _ in range(5):
            try:
                guard.take("same")
                ok.append(1)
            except QuotaCapReached:
                pass
            guard.remaining("same")

    threads = [threading.Thread(target=tab) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 7
    assert guard.remaining("same") == {"session": 0, "day": 993}


def test_take_and_give_back_race_keeps_counts_consistent():
    guard = ServerTokenGuard(session_limit=10_000, daily_limit=10_000)
    start = threading.Barrier(16)

    def worker(i: int) -> None:
        start.wait()
        for _ in range(200):
            guard.take(f"s{i % 4}")
            guard.give_back(f"s{i % 4}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert guard.remaining("s0") == {"session": 10_000, "day": 10_000}


def test_caps_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(SESSION_CAP_ENV, "3")
    monkeypatch.setenv(DAILY_CAP_ENV, "40")
    ctx = AppContext.from_env(base_url="http://127.0.0.1:9/", server_token="ms-test-x")
    assert ctx.guard.session_limit == 3 and ctx.guard.daily_limit == 40
    monkeypatch.setenv(SESSION_CAP_ENV, "0")  # 0 or blank: no cap
    monkeypatch.setenv(DAILY_CAP_ENV, "")
    ctx = AppContext.from_env(base_url="http://127.0.0.1:9/", server_token="ms-test-x")
    assert not ctx.guard.enabled


def test_a_bad_cap_value_stops_the_app_with_its_name(monkeypatch):
    monkeypatch.setenv(SESSION_CAP_ENV, "ten")
    with pytest.raises(SystemExit) as info:
        AppContext.from_env(base_url="http://127.0.0.1:9/")
    assert SESSION_CAP_ENV in str(info.value)


class _Req:
    def __init__(self, headers=None, session_hash="sess"):
        self.headers = headers or {}
        self.session_hash = session_hash


def test_whose_token_a_call_uses():
    ctx = AppContext(base_url="http://x/", server_token="ms-test-server")
    assert ctx.token_for(None, _Req({"x-modelscope-token": " ms-test-mine "})) == ("ms-test-mine", SOURCE_HEADER)
    assert ctx.token_for("ms-test-typed", _Req()) == ("ms-test-typed", SOURCE_SESSION)
    assert ctx.token_for("  ", _Req()) == ("ms-test-server", SOURCE_SERVER)
    assert ctx.token_for(None, None) == ("ms-test-server", SOURCE_SERVER)
    assert AppContext(base_url="http://x/").token_for(None, _Req()) == (None, SOURCE_NONE)
    # only the server token is guarded, and the context never prints it
    assert "ms-test-server" not in repr(ctx)


# --------------------------------------------------------------------------- end to end
# The launched studio (conftest `clean_studio`: app.build_app + simulator) driven through
# gradio_client, the way a class's programs or browsers reach a Space.

CLASS_TOKEN = "ms-test-classroom-guard"
STREET_SIGN = str(context.__file__).replace("ui/context.py", "assets/street_sign.jpg")


def _client(studio, token: str | None = None, lang: str = "en"):
    from gradio_client import Client

    headers = {"accept-language": "zh-CN,zh;q=0.9" if lang == "zh" else "en-US,en;q=0.9"}
    if token:
        headers["X-ModelScope-Token"] = token
    return Client(studio.url, headers=headers, verbose=False, download_files=False)


def _chat(c, message: str = "hello"):
    return c.predict(message, "Qwen/Qwen2.5-72B-Instruct", "", 0.7, 0.8, 0, False, api_name="/chat")


def _vision(c, question: str = "What does the sign say?"):
    from gradio_client import handle_file

    return c.predict("", handle_file(STREET_SIGN), question, "Qwen/Qwen2.5-VL-72B-Instruct",
                     api_name="/vision")


def _image(c, prompt: str = "a golden cat"):
    return c.predict(model="Qwen/Qwen-Image", prompt=prompt, width=256, height=256, seed=7,
                     api_name="/generate_image")


def _api_calls(sim) -> list:
    return [e for e in sim.log if e.path.endswith(("/chat/completions", "/images/generations"))]


@pytest.fixture
def classroom(clean_studio, tmp_path, monkeypatch):
    """The studio as a class's Space: a server token with a per-session cap of 2."""
    monkeypatch.setattr(clean_studio.ctx, "outputs_dir", str(tmp_path))
    clean_studio.ctx.server_token = CLASS_TOKEN
    clean_studio.ctx.guard = ServerTokenGuard(session_limit=2)
    return clean_studio


def test_third_call_on_the_class_token_names_the_cap(classroom):
    from gradio_client.exceptions import AppError

    student = _client(classroom)
    _, quota, _ = _chat(student)
    assert "class token: **1**" in quota  # the remaining count is shown to the student
    _, quota, _ = _chat(student)
    assert "class token: **0**" in quota
    with pytest.raises(AppError) as info:
        _chat(student)
    message = str(info.value)
    assert "2 requests on the shared token" in message and "your own ModelScope token" in message
    assert len(_api_calls(classroom.sim)) == 2  # the refused call never left the studio


def test_the_cap_is_one_budget_across_all_tabs(classroom):
    from gradio_client.exceptions import AppError

    student = _client(classroom)
    _vision(student)
    _image(student)
    with pytest.raises(AppError, match="2 requests on the shared token"):
        _chat(student)
    with pytest.raises(AppError, match="2 requests on the shared token"):
        _image(student)
    with pytest.raises(AppError, match="2 requests on the shared token"):
        _vision(student)
    assert len(_api_calls(classroom.sim)) == 2
    # another program without a browser id is the same "programs" student: no fresh share
    with pytest.raises(AppError, match="2 requests on the shared token"):
        _chat(_client(classroom))
    # a classmate (a browser: the page's load event gave the session a student id) has a full share
    classmate = _client(classroom)
    classroom.ctx.identify(classmate.session_hash, None)
    _chat(classmate)


def test_personal_token_is_never_capped(classroom):
    from modelscope_api.config import fingerprint

    capped = _client(classroom)
    _chat(capped)
    _chat(capped)
    own = _client(classroom, "ms-test-my-own-token")
    for _ in range(3):
        _, quota, _ = _chat(own)
        assert "class token" not in quota  # no class-cap line for a personal token
    _image(own)
    _vision(own)
    personal = [e for e in _api_calls(classroom.sim) if e.token_fingerprint == fingerprint("ms-test-my-own-token")]
    assert len(personal) == 5
    assert classroom.ctx.guard.remaining("unused")["session"] == 2


def test_daily_cap_stops_the_whole_class_in_its_language(classroom):
    from gradio_client.exceptions import AppError

    classroom.ctx.guard = ServerTokenGuard(session_limit=5, daily_limit=3)
    alice, bob, chen = _client(classroom), _client(classroom), _client(classroom, lang="zh")
    _chat(alice)
    _chat(bob)
    _, quota, _ = _chat(chen)
    assert "全班今日还可用 **0**" in quota
    with pytest.raises(AppError, match="today's 3 requests"):
        _chat(alice)  # alice has used 1 of her 5, but the class's day is spent
    with pytest.raises(AppError) as info:
        _chat(chen)
    assert "3 次请求已用完" in str(info.value)
    _chat(_client(classroom, "ms-test-teacher-own"))  # a personal token still works
