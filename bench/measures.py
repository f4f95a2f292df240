"""The measurements P1-P6 and the API note. Each returns a list of Rows.

Compared sides are interleaved (the order rotates every round) and repeated, and the
median of each side is used, so machine noise hits every side alike.
"""

from __future__ import annotations

import statistics
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradio_client import Client

from . import procs

CHAT_MODEL = "Qwen/Qwen2.5-72B-Instruct"  # never thinks: the first token is answer text
IMAGE_MODEL = "Qwen/Qwen-Image"
TTFT = 0.3
MB = 1024 * 1024


@dataclass
class Row:
    id: str
    measure: str
    goal: str
    measured: str
    ok: bool | None  # None: reported, no goal
    data: dict[str, Any] = field(default_factory=dict)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms"


def rotate(items: list, r: int) -> list:
    k = r % len(items)
    return items[k:] + items[:k]


def interleave(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every side once per round, the order rotating; {side: [seconds, …]}."""
    out: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in rotate(names, r):
            out[name].append(sides[name]())
    return out


# --------------------------------------------------------------------------- the servers


class Servers:
    """Started on demand, each in its own process; all stopped by `close()`."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.env = procs.child_env(workdir)
        self._procs: dict[str, procs.Proc] = {}
        self.sim = procs.start_simulator(self.logdir, self.env)
        self._procs["simulator"] = self.sim
        self.admin = procs.SimAdmin(self.sim.url)
        self.env["MODELSCOPE_BASE_URL"] = self.sim.url
        self._tokens = 0

    def token(self, who: str = "user") -> str:
        self._tokens += 1
        return f"ms-test-bench-{who}-{self._tokens}"

    def start(self, *names: str) -> None:
        """Start the named apps side by side ("app", "floor", "pertoken") and wait for all."""
        specs = {
            "app": ("app.py",),
            "floor": ("bench/floor_app.py", "--delay", str(TTFT)),
            "pertoken": ("bench/pertoken_app.py", "--base-url", self.sim.url, "--model", CHAT_MODEL),
        }
        new = [n for n in names if n not in self._procs]
        for n in new:
            self._procs[n] = procs.start_gradio(n, *specs[n][:1], self.logdir, self.env, *specs[n][1:],
                                                wait=False)
        for n in new:
            self._procs[n].wait_ready(timeout=300)

    def proc(self, name: str) -> procs.Proc:
        return self._procs[name]

    def client(self, name: str, token: str | None = None) -> Client:
        headers = {"X-ModelScope-Token": token or self.token(name), "accept-language": "en-US,en;q=0.9"}
        return Client(self._procs[name].url, headers=headers, verbose=False, download_files=False)

    def openai(self, token: str | None = None):
        import openai

        return openai.OpenAI(api_key=token or self.token("openai"), base_url=self.sim.url + "v1/",
                             max_retries=0)

    def close(self) -> None:
        for p in reversed(list(self._procs.values())):
            p.stop()


# --------------------------------------------------------------------------- chat helpers


def app_chat(client: Client, message: str, max_tokens: int):
    return client.submit(message, CHAT_MODEL, "", 0.7, 0.8, max_tokens, False, api_name="/chat")


def app_text(out) -> str:
    """The answer text in one streamed output of the studio's /chat."""
    msgs = out[0] if isinstance(out, (list, tuple)) and out else []
    return "".join(m.get("content") or "" for m in msgs or []
                   if isinstance(m, dict) and isinstance(m.get("content"), str)
                   and not (m.get("metadata") or {}).get("title"))


def plain_text(out) -> str:
    if isinstance(out, (list, tuple)):
        out = out[0] if out else ""
    if isinstance(out, dict):
        out = out.get("content", "")
    return out if isinstance(out, str) else str(out or "")


def first_output(job, text_of: Callable[[Any], str], t0: float) -> float:
    """Seconds from t0 to the first streamed output with text; drains the job."""
    seen = None
    for out in job:
        if text_of(out):
            seen = time.perf_counter() - t0
            break
    job.result()
    if seen is None:
        raise RuntimeError("the stream ended without any text")
    return seen


def openai_stream(oa, messages: list[dict], max_tokens: int) -> tuple[float, float, int]:
    """(ttft, total, content chunks) for one streamed completion with the bare openai SDK."""
    t0 = time.perf_counter()
    stream = oa.chat.completions.create(model=CHAT_MODEL, messages=messages, stream=True,
                                        max_tokens=max_tokens)
    first, n = None, 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            n += 1
            if first is None:
                first = time.perf_counter() - t0
    return first or float("nan"), time.perf_counter() - t0, n


# --------------------------------------------------------------------------- P1


def p1(s: Servers, quick: bool) -> list[Row]:
    s.start("app", "floor")
    s.admin.set_config(ttft=TTFT, tokens_per_second=500.0)
    rounds = 10 if quick else 20
    app_c, floor_c, oa = s.client("app"), s.client("floor"), s.openai()

    def app_side():
        t0 = time.perf_counter()
        return first_output(app_chat(app_c, "hi", 20), app_text, t0)

    def floor_side():
        t0 = time.perf_counter()
        return first_output(floor_c.submit("hi", api_name="/chat"), plain_text, t0)

    def openai_side():
        return openai_stream(oa, [{"role": "user", "content": "hi"}], 20)[0]

    for f in (app_side, floor_side, openai_side):  # warm-up: connections, first-call imports
        f()
    t = interleave({"app": app_side, "floor": floor_side, "openai": openai_side}, rounds)
    a, f, o = med(t["app"]), med(t["floor"]), med(t["openai"])
    data = {"rounds": rounds, "seconds": t, "median": {"app": a, "floor": f, "openai": o}}
    detail = f"app {ms(a)}, floor {ms(f)}, openai {ms(o)}; {rounds} rounds"
    return [
        Row("P1", "chat TTFT via the app ÷ bare ChatInterface floor (server TTFT 300 ms)", "≤ 1.05",
            f"**{a / f:.3f}** ({detail})", a / f <= 1.05, data),
        Row("P1b", "chat TTFT via the app ÷ bare openai client", "(reported)",
            f"{a / o:.3f} (app − openai = {ms(a - o)})", None),
    ]


# --------------------------------------------------------------------------- P2

HISTORY_PAIRS = 50  # 100 messages
HISTORY_TOKENS = 30


def history_questions() -> list[str]:
    return [f"Question {i}: tell me something about topic number {i}." for i in range(HISTORY_PAIRS)]


def openai_history() -> list[dict]:
    """The same 100 messages the Gradio sides hold (the simulator's answers are a pure
    function of the question)."""
    from modelscope_api.simulator.chat import answer_tokens

    msgs: list[dict] = []
    for q in history_questions():
        msgs.append({"role": "user", "content": q})
        msgs.append({"role": "assistant", "content": "".join(answer_tokens(q, HISTORY_TOKENS)[0]).strip()})
    return msgs


def seed_history(client: Client, messages: list[dict]) -> Client:
    """Put `messages` into this session's chat history the way the browser does after a turn
    or an edit: ChatInterface's own (undocumented) event that copies the Chatbot's value into
    its history state. One call instead of 50 turns."""
    deps = client.config["dependencies"]
    kinds = {c["id"]: c.get("type") for c in client.config["components"]}
    chat = next(d for d in deps if d.get("api_name") == "chat")
    state = chat["inputs"][1]
    sync = next(d for d in deps if d["outputs"][:1] == [state] and len(d["inputs"]) == 1
                and kinds.get(d["inputs"][0]) == "chatbot")
    value = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages]
    client.predict(value, fn_index=sync["id"])
    return client


def sent_message_counts(s: Servers, max_tokens: int) -> list[int]:
    """How many messages each logged chat request with this max_tokens carried."""
    r = s.admin.session.get(s.sim.url + "_sim/log", params={"path_contains": "chat/completions"}, timeout=30)
    r.raise_for_status()
    return [len(e["json"]["messages"]) for e in r.json()["requests"]
            if isinstance(e.get("json"), dict) and e["json"].get("max_tokens") == max_tokens]


def p2(s: Servers, quick: bool) -> list[Row]:
    s.start("app", "pertoken")
    rounds = 4 if quick else 8
    tokens = 1500
    hist = openai_history()
    s.admin.set_config(ttft=TTFT, tokens_per_second=500.0)
    # a fresh pair of sessions per round, each holding the same 100-message history
    made = {(kind, r): seed_history(s.client(kind), hist) for r in range(rounds) for kind in ("app", "pertoken")}
    oa = s.openai()
    message = "Please write a very long story about a lighthouse keeper."
    counter = {"app": 0, "pertoken": 0}
    lengths: dict[str, int] = {}

    def gradio_side(kind: str):
        def run():
            c = made[(kind, counter[kind])]
            counter[kind] += 1
            t0 = time.perf_counter()
            if kind == "app":
                out = app_chat(c, message, tokens).result()
                lengths[kind] = len(app_text(out).split())
            else:
                out = c.submit(message, tokens, api_name="/chat").result()
                lengths[kind] = len(plain_text(out).split())
            return time.perf_counter() - t0
        return run

    def openai_side():
        _, total, n = openai_stream(oa, [*hist, {"role": "user", "content": message}], tokens)
        lengths["openai"] = n
        return total

    openai_side()  # warm-up
    t = interleave({"app": gradio_side("app"), "openai": openai_side, "pertoken": gradio_side("pertoken")},
                   rounds)
    a, o, p = med(t["app"]), med(t["openai"]), med(t["pertoken"])
    sent = sent_message_counts(s, tokens)
    if len(sent) < 3 * rounds + 1 or min(sent) < 2 * HISTORY_PAIRS + 1:
        raise RuntimeError(f"the history did not reach the simulator: messages per call {sent}")
    data = {"rounds": rounds, "seconds": t, "median": {"app": a, "openai": o, "pertoken": p},
            "answer_words": lengths, "messages_sent": sent}
    return [
        Row("P2", f"{tokens} tokens at 500 tok/s, 100-message history: app end-to-end ÷ bare openai",
            "≤ 1.08", f"**{a / o:.3f}** (app {a:.2f} s, openai {o:.2f} s; {rounds} rounds)", a / o <= 1.08, data),
        Row("P2b", "… app ÷ a per-token-yield app (gr.load_chat style)", "< 1 (below it)",
            f"**{a / p:.3f}** (per-token app {p:.2f} s = {p / o:.3f}× openai)", a / p < 1.0),
    ]


# --------------------------------------------------------------------------- images


def app_image(client: Client, size: int | None = None, prompt: str = "a lighthouse at dusk"):
    kw = {"width": size, "height": size} if size else {}
    return client.submit(model=IMAGE_MODEL, prompt=prompt, api_name="/generate_image", **kw)


def sim_log(s: Servers, **params) -> list[dict]:
    r = s.admin.session.get(s.sim.url + "_sim/log", params=params, timeout=30)
    r.raise_for_status()
    return r.json()["requests"]


def p3(s: Servers, quick: bool) -> list[Row]:
    s.start("app")
    task = 3.0
    s.admin.set_config(task_seconds=task)
    rounds = 3 if quick else 5
    c = s.client("app")
    walls, polls, inner = [], [], []
    lag_poll, lag_download, lag_answer = [], [], []  # seconds after the task finished on the simulator
    for _ in range(rounds):
        s.admin.reset()
        t0 = time.perf_counter()
        _images, record = app_image(c).result()
        walls.append(time.perf_counter() - t0)
        answered = time.time()
        polls.append(record["polls"])
        inner.append(record["elapsed_s"])
        finished = s.admin.finished_at(record["task_id"])
        log = sim_log(s)
        last_poll = max(e["time"] for e in log if record["task_id"] in e["path"] and "/tasks/" in e["path"])
        download = min(e["time"] for e in log if "/_sim/files/" in e["path"] and e["time"] >= last_poll)
        lag_poll.append(last_poll - finished)
        lag_download.append(download - finished)
        lag_answer.append(answered - finished)
    w = med(walls)
    data = {"rounds": rounds, "wall": walls, "polls": polls, "client_elapsed": inner,
            "finish_to_last_poll": lag_poll, "finish_to_download_request": lag_download,
            "finish_to_app_answer": lag_answer}
    return [
        Row("P3", "image via the app after a 3 s task (default 1328²): app wall ÷ 3 s", "≤ 1.15",
            f"**{w / task:.3f}** (wall {w:.2f} s; after the task ended: last poll +{ms(med(lag_poll))}, "
            f"download asked +{ms(med(lag_download))}, app answered +{ms(med(lag_answer))})",
            w / task <= 1.15, data),
        Row("P3b", "… polls used", "≤ 12", f"**{max(polls)}** (max of {rounds})", max(polls) <= 12),
    ]


def api_note(s: Servers, quick: bool) -> list[Row]:
    """ImageClient.generate in this process against the simulator process."""
    from modelscope_api.images import ImageClient, ImageRequest

    s.admin.set_config(task_seconds=3.0)
    runs = 4 if quick else 8
    client = ImageClient(s.token("api"), s.sim.url)
    delays, polls = [], []
    for i in range(runs):
        res = client.generate(ImageRequest(IMAGE_MODEL, f"a lighthouse {i}", width=512, height=512))
        done = time.time()
        delays.append(done - s.admin.finished_at(res.task_id))
        polls.append(res.polls)
    mean, worst = statistics.mean(delays), max(delays)
    return [Row("API", "task finished (sim) → ImageClient.generate returns, 3 s task, 512²",
                "≤ 0.5 s; ≤ 12 polls",
                f"**mean {ms(mean)}, max {ms(worst)}**; polls {min(polls)}–{max(polls)} ({runs} runs)",
                worst <= 0.5 and max(polls) <= 12, {"delays": delays, "polls": polls})]


# --------------------------------------------------------------------------- P4


def crowd_vs_alone(s: Servers, n_img: int, n_chat: int, chat_tokens: int, rounds: int,
                   ) -> tuple[dict[str, list[float]], float, float, float]:
    """Interleaved rounds of: all users at once, one image user alone, one chat user alone."""
    clients: list[Client | None] = [None] * (n_img + n_chat)

    def mk(i):
        clients[i] = s.client("app")

    ths = [threading.Thread(target=mk, args=(i,)) for i in range(len(clients))]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    solo_img, solo_chat = s.client("app"), s.client("app")

    def one(c: Client, kind: str, i: int) -> None:
        if kind == "image":
            _imgs, rec = app_image(c, 512, f"a lighthouse {i}").result()
            assert rec["task_id"]
        else:
            out = app_chat(c, f"tell me a story {i}", chat_tokens).result()
            assert app_text(out)

    def crowd() -> float:
        barrier = threading.Barrier(len(clients) + 1)
        ends: list[float] = []
        errors: list[BaseException] = []

        def user(i):
            barrier.wait()
            try:
                one(clients[i], "image" if i < n_img else "chat", i)
                ends.append(time.perf_counter())
            except BaseException as exc:
                errors.append(exc)

        ths = [threading.Thread(target=user, args=(i,)) for i in range(len(clients))]
        for th in ths:
            th.start()
        barrier.wait()
        t0 = time.perf_counter()
        for th in ths:
            th.join()
        if errors:
            traceback.print_exception(errors[0])
            raise RuntimeError(f"{len(errors)} of {len(clients)} users failed: {errors[0]!r}")
        return max(ends) - t0

    def alone(kind: str):
        def run():
            t0 = time.perf_counter()
            one(solo_img if kind == "image" else solo_chat, kind, 0)
            return time.perf_counter() - t0
        return run

    alone("image")()  # warm-up (first calls in a process build the SDK's models)
    alone("chat")()
    t = interleave({"crowd": crowd, "image": alone("image"), "chat": alone("chat")}, rounds)
    return t, med(t["crowd"]), med(t["image"]), med(t["chat"])


def p4(s: Servers, quick: bool) -> list[Row]:
    s.start("app")
    rows = []
    # The goal row: chat at the simulator's default speed (80 tok/s), 160 tokens (~2.3 s alone,
    # like the 2 s image).
    s.admin.set_config(task_seconds=2.0, ttft=TTFT, tokens_per_second=80.0)
    t, w, i1, c1 = crowd_vs_alone(s, 16, 16, 160, 2 if quick else 3)
    one_user = max(i1, c1)
    rows.append(Row("P4", "32 users at once (16 images of 2 s, 16 chat streams of 160 tok at 80 tok/s): "
                    "wall ÷ one user's wall", "≤ 2.0",
                    f"**{w / one_user:.3f}** (32 users {w:.2f} s; alone: image {i1:.2f} s, chat {c1:.2f} s; "
                    f"{len(t['crowd'])} rounds)", w / one_user <= 2.0, {"seconds": t}))
    if not quick:  # the same with fast streams: 16 × 500 tok/s through one app process
        s.admin.set_config(tokens_per_second=500.0)
        t, w, i1, c1 = crowd_vs_alone(s, 16, 16, 1000, 1)
        one_user = max(i1, c1)
        rows.append(Row("P4s", "… the same with 16 streams of 1000 tok at 500 tok/s (stress)", "(reported)",
                        f"{w / one_user:.3f} (32 users {w:.2f} s; alone: image {i1:.2f} s, chat {c1:.2f} s; "
                        "1 round)", None, {"seconds": t}))
    return rows


# --------------------------------------------------------------------------- P5


def p5(s: Servers, quick: bool) -> list[Row]:
    runs = 3 if quick else 5
    env = dict(s.env)

    def cold(script: str, name: str):
        def run():
            p = procs.start_gradio(name, script, s.logdir, env, wait=False)
            try:
                ready = p.wait_ready(timeout=300)
                return ready - p.started
            finally:
                p.stop()
        return run

    t = interleave({"app": cold("app.py", "cold-app"), "hello": cold("bench/hello_app.py", "cold-hello")}, runs)
    a, h = med(t["app"]), med(t["hello"])
    return [Row("P5", "cold start `python app.py` → first 200 on / ÷ bare Gradio hello world", "≤ 1.3",
                f"**{a / h:.3f}** (app {a:.1f} s, hello {h:.1f} s; {runs} runs each)", a / h <= 1.3,
                {"runs": runs, "seconds": t})]


# --------------------------------------------------------------------------- P6


def in_parallel(workers: int, items: range, one: Callable[[int, int], None], what: str) -> None:
    """one(worker, item) for every item, spread over `workers` threads; the first error raises."""
    errors: list[BaseException] = []
    todo = list(items)

    def work(w: int):
        try:
            for i in todo[w::workers]:
                one(w, i)
        except BaseException as exc:
            errors.append(exc)

    ths = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errors:
        raise RuntimeError(f"{what} failed: {errors[0]!r}")


def p6(s: Servers, quick: bool) -> list[Row]:
    s.start("app")
    s.admin.set_config(task_seconds=0.01)
    pid = s.proc("app").pid
    n, warm, workers = 300, 20, 8
    clients = [s.client("app") for _ in range(workers)]

    def batch(count: int, tag: str) -> None:
        def one(w: int, i: int) -> None:
            _imgs, rec = app_image(clients[w], 256, f"{tag} {i}").result()
            assert rec["task_id"]

        in_parallel(workers, range(count), one, "image generation")

    batch(warm, "warm-up")
    time.sleep(1.0)
    before = procs.rss_bytes(pid)
    t0 = time.perf_counter()
    batch(n, "image")
    took = time.perf_counter() - t0
    time.sleep(1.0)
    after = procs.rss_bytes(pid)
    growth = (after - before) / MB
    return [Row("P6", f"app RSS growth over {n} image generations (256², via gradio_client, {workers} at a time)",
                "≤ 50 MB", f"**{growth:+.1f} MB** ({before / MB:.0f} → {after / MB:.0f} MB; {took:.0f} s)",
                growth <= 50, {"before": before, "after": after, "seconds": took})]


# --------------------------------------------------------------------------- P7


VL_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


def big_picture(path: Path) -> Path:
    """A 9.5 MB BMP of noise (it does not compress), like an unshrunk phone photo."""
    from PIL import Image

    if not path.exists():
        Image.effect_noise((1780, 1780), 120).convert("RGB").save(path, format="BMP")
    return path


def vision_session(base: str, picture: Path, token: str, i: int) -> None:
    """One visitor by raw HTTP: upload the picture, ask about it (a new page session each)."""
    import json

    import requests

    with picture.open("rb") as f:
        r = requests.post(f"{base}gradio_api/upload", files={"files": (f"photo-{i}.bmp", f, "image/bmp")},
                          timeout=60)
    r.raise_for_status()
    path = r.json()[0]
    image = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": picture.name}
    r = requests.post(f"{base}gradio_api/call/vision", headers={"X-ModelScope-Token": token}, timeout=60,
                      json={"data": ["", image, f"What is in picture {i}?", VL_MODEL]})
    r.raise_for_status()
    event = None
    with requests.get(f"{base}gradio_api/call/vision/{r.json()['event_id']}", stream=True, timeout=120) as s:
        for line in s.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"vision session {i} failed: {json.loads(line[6:])}")
                return


def p7(s: Servers, quick: bool) -> list[Row]:
    s.start("app")
    # The simulator keeps a short log here: each request carries a 13 MB data: URL.
    s.admin.set_config(ttft=0.0, tokens_per_second=5000.0, max_log=10)
    pid, base = s.proc("app").pid, s.proc("app").url
    picture = big_picture(s.workdir / "photo.bmp")
    n, warm, workers = (200 if quick else 1000), 20, 4

    def batch(start: int, count: int) -> None:
        in_parallel(workers, range(start, start + count),
                    lambda _w, i: vision_session(base, picture, s.token("vision"), i), "vision sessions")

    batch(0, warm)
    time.sleep(1.0)
    before = procs.rss_bytes(pid)
    t0 = time.perf_counter()
    batch(warm, n // 2)
    half = procs.rss_bytes(pid)  # growth that stops here is the peak of the requests in flight
    batch(warm + n // 2, n - n // 2)
    took = time.perf_counter() - t0
    time.sleep(2.0)
    after = procs.rss_bytes(pid)
    growth = (after - before) / MB
    second_half = (after - half) / MB
    mb = picture.stat().st_size / 1e6
    return [Row("P7", f"app RSS growth over {n} Vision sessions, each uploading a {mb:.1f} MB picture and asking "
                f"about it (raw HTTP, {workers} at a time)", "≤ 300 MB",
                f"**{growth:+.1f} MB** ({before / MB:.0f} → {half / MB:.0f} after {n // 2} → {after / MB:.0f} MB; "
                f"second half {second_half:+.1f} MB; {took:.0f} s)",
                growth <= 300, {"before": before, "half": half, "after": after, "seconds": took, "sessions": n})]


ALL = {"P5": p5, "P1": p1, "P2": p2, "P3": p3, "API": api_note, "P4": p4, "P6": p6, "P7": p7}
