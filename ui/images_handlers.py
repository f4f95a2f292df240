"""The image tab's handlers: one generator for the browser (streams task id, status, elapsed
time), one plain function for the public `/generate_image` endpoint, and the small helpers
(model change, presets, swap, normalise, cancel, reuse). Callable without a running app:
tests hand them a fake request (anything with `.headers` and `.session_hash`)."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio.utils import get_upload_folder

from modelscope_api import catalog, storage
from modelscope_api.errors import (
    MissingTokenError,
    ModelScopeError,
    TaskCancelledError,
    ValidationError,
)
from modelscope_api.images import IMAGE_URLS_MAX, ImageClient, ImageRequest, ImageResult, StatusUpdate
from modelscope_api.pictures import FittedPicture
from modelscope_api.snippets import image_snippet

from . import images_logic as L
from .context import SOURCE_SERVER, AppContext, QuotaCapReached, session_id
from .explain import explain, lang_of
from .shared import answered_by_server, format_quota
from .uploads import read_fitted, shrink_facts, upload_path

TIMEOUT_ENV = "STUDIO_IMAGE_TIMEOUT"
YIELD_EVERY = 0.2  # at most ~5 status updates a second reach the browser
TICK_EVERY = 1.0  # …and one a second while nothing changes, so elapsed time moves

# Order of the browser generator's outputs (tests index with these).
OUT_STATUS, OUT_GALLERY, OUT_SEED, OUT_CODE, OUT_RECORD, OUT_FILES, OUT_QUOTA, OUT_HISTORY = range(8)
N_OUT = 8


def image_timeout(ctx: AppContext) -> float:
    """Seconds an image may take: ctx.image_timeout, else $STUDIO_IMAGE_TIMEOUT, else 300."""
    value = getattr(ctx, "image_timeout", None) or os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        return float(value) if value else 300.0
    except ValueError:
        return 300.0


def _outputs(**kw) -> tuple:
    names = ("status", "gallery", "seed", "code", "record", "files", "quota", "history")
    return tuple(kw.get(n, gr.skip()) for n in names)


@dataclass
class Finished:
    result: ImageResult | None = None
    error: BaseException | None = None


class ImageHandlers:
    def __init__(self, ctx: AppContext, strings: dict[str, dict[str, str]]):
        self.ctx = ctx
        self.strings = strings
        self._running: dict[str, dict[threading.Event, str | None]] = {}
        self._lock = threading.Lock()

    def t(self, key: str, lang: str, **fmt) -> str:
        value = self.strings.get(lang, {}).get(key) or self.strings["en"].get(key, key)
        return value.format(**fmt) if fmt else value

    # ------------------------------------------------------------------ running one request

    def _token(self, token_state: Any, request, student: str) -> tuple[str, str]:
        token, source = self.ctx.token_for(token_state, request)
        if not token:
            raise MissingTokenError("No ModelScope token was given.")
        if source == SOURCE_SERVER:
            self.ctx.guard.take(student)  # QuotaCapReached when the class cap is reached
        return token, source

    def _start(self, req: ImageRequest, token: str, sid: str, cancel: threading.Event,
               updates: queue.Queue) -> threading.Thread:
        client = ImageClient(token, self.ctx.base_url, timeout=image_timeout(self.ctx))

        def work():
            try:
                updates.put(Finished(result=client.generate(req, on_status=updates.put, cancel=cancel)))
            except BaseException as exc:  # handed to the handler, never lost in a thread
                updates.put(Finished(error=exc))

        thread = threading.Thread(target=work, name=f"image-{sid[:8]}", daemon=True)
        thread.start()
        return thread

    def _register(self, sid: str, cancel: threading.Event, task_id: str | None = None) -> None:
        with self._lock:
            self._running.setdefault(sid, {})[cancel] = task_id

    def _unregister(self, sid: str, cancel: threading.Event) -> None:
        with self._lock:
            mine = self._running.get(sid, {})
            mine.pop(cancel, None)
            if not mine:
                self._running.pop(sid, None)

    def _save(self, result: ImageResult, lang: str) -> tuple[list[str], list[str], list[str]]:
        """Save to outputs_dir; return (gallery paths, download paths, saved names).

        Gradio serves copies from its cache (named by a hash of the content); outputs_dir
        itself is never served, so nobody can fetch another session's files by name."""
        cache = get_upload_folder()
        try:
            saved = storage.save_result(result, self.ctx.outputs_dir)
        except OSError as exc:
            gr.Warning(self.t("img.save_failed", lang, msg=exc))
            paths = [processing_utils.save_bytes_to_cache(img.data, f"image.{img.extension}", cache)
                     for img in result.images]
            return paths, list(paths), []
        shown = [processing_utils.save_file_to_cache(s.path, cache) for s in saved]
        files = shown + [processing_utils.save_file_to_cache(s.sidecar, cache) for s in saved]
        return shown, files, [str(s.path) for s in saved]

    def explain_failure(self, err: BaseException, last: StatusUpdate | None, lang: str) -> str:
        """explain(), plus the task id when only this tab knows it (e.g. a poll's 500)."""
        msg = explain(err, lang, self.ctx.site)
        task = last.task_id if last else None
        if task and task not in msg:
            msg += f" (task {task})" if lang != "zh" else f"（任务 {task}）"
        return msg

    @staticmethod
    def upload_pictures(uploads: Any) -> list[tuple[str, FittedPicture]]:
        """The edit section's uploads (only files in Gradio's upload cache), each as (file name,
        the picture fitted to the service: shrunk when a side is over 2048 px)."""
        if uploads is None:
            return []
        if not isinstance(uploads, (list, tuple)):
            uploads = [uploads]
        if len(uploads) > IMAGE_URLS_MAX:
            raise ValidationError("image_url", f"{len(uploads)} images", f"at most {IMAGE_URLS_MAX} images",
                                  kind="too_many", limit=IMAGE_URLS_MAX)
        pictures = []
        for item in uploads:
            path = upload_path(item, field="image_url")  # refused alike, wherever it points
            found = path and read_fitted(path, field=f"image_url (upload {path.name[:80]})")
            if found:
                pictures.append((path.name, found[1]))
        return pictures

    def shrink_note(self, pictures: list[tuple[str, FittedPicture]], lang: str) -> str:
        """One line per upload made smaller before sending ("" when none was)."""
        lines = []
        for name, picture in pictures:
            facts = shrink_facts(picture)
            if facts is not None:
                kind, numbers = facts
                shown = "".join(c for c in name[:80] if c.isprintable() and c != "`")
                lines.append(self.t(f"img.{kind}", lang, name=f"`{shown}`", **numbers))
        return "\n\n".join(lines)

    def _code(self, req: ImageRequest) -> str:
        try:
            return image_snippet(req, self.ctx.base_url)
        except Exception as exc:  # the code view must never break a generation
            return f"# could not render the code for this request: {type(exc).__name__}"

    def _status_line(self, u: StatusUpdate, lang: str, now_elapsed: float) -> str:
        return self.t("img.status_line", lang, task=u.task_id, status=u.status,
                      elapsed=now_elapsed, polls=u.polls)

    # ------------------------------------------------------------------ browser: generate

    def generate(
        self, prompt, negative_prompt, model, width, height, use_defaults, steps, guidance, seed,
        randomize_seed, lora_table, image_urls_text, uploads, token_state, history,
        request: gr.Request, progress=gr.Progress(),  # noqa: B008
    ) -> Iterator[tuple]:
        lang, sid = lang_of(request), session_id(request)
        history = list(history or [])
        try:
            settings = L.settings_from_controls(
                prompt, negative_prompt, model, width, height, use_defaults, steps, guidance, seed,
                randomize_seed, lora_table, image_urls_text)
            pictures = self.upload_pictures(uploads) if catalog.is_edit_model(settings["model"]) else []
            req = L.request_from_settings(settings, [picture.data_url for _name, picture in pictures])
        except ValidationError as err:
            msg = explain(err, lang, self.ctx.site)
            gr.Warning(msg)
            yield _outputs(status=self.t("img.status_invalid", lang, msg=msg))
            return
        # Uploads made smaller say so under every status line, the final one included.
        note = self.shrink_note(pictures, lang)
        del pictures  # their bytes travel in the request only

        def noted(status: str) -> str:
            return f"{status}\n\n{note}" if note else status

        code = self._code(req)
        student = self.ctx.student_of(request)
        try:
            token, source = self._token(token_state, request, student)
        except (MissingTokenError, QuotaCapReached) as err:
            msg = explain(err, lang, self.ctx.site)
            gr.Warning(msg)
            yield _outputs(status=noted(self.t("img.status_error", lang, msg=msg)), code=code)
            return

        cancel, updates = threading.Event(), queue.Queue()
        self._register(sid, cancel)
        started = time.monotonic()
        yield _outputs(status=noted(self.t("img.status_submitting", lang)), code=code, seed=req.seed)
        progress(0, desc=self.t("img.status_submitting", lang))
        last: StatusUpdate | None = None
        shown_at, dirty = 0.0, False
        self._start(req, token, sid, cancel, updates)
        try:
            while True:
                try:
                    item = updates.get(timeout=YIELD_EVERY / 2)
                except queue.Empty:
                    item = None
                if isinstance(item, StatusUpdate):
                    last, dirty = item, True
                    self._register(sid, cancel, item.task_id)
                if isinstance(item, Finished):
                    break
                now = time.monotonic()
                if last and ((dirty and now - shown_at >= YIELD_EVERY) or now - shown_at >= TICK_EVERY):
                    line = self._status_line(last, lang, now - started)
                    progress((last.polls, None), desc=f"{last.status} · {now - started:.1f} s", unit="polls")
                    yield _outputs(status=noted(line))
                    shown_at, dirty = now, False
        finally:
            cancel.set()  # if the browser went away (or Cancel was clicked) the poll loop stops now
            self._unregister(sid, cancel)

        if item.error is not None:
            err = item.error
            self.ctx.settle(err, source, student, started=last is not None)
            quota = getattr(err, "quota", None)
            if isinstance(err, TaskCancelledError):
                key, msg = "img.status_cancelled", ""
                status = self.t(key, lang, task=f"`{last.task_id}`" if last else "-")
            else:
                key, msg = "img.status_error", self.explain_failure(err, last, lang)
                status = self.t(key, lang, msg=msg)
            out = dict(status=noted(status))
            if last is not None or answered_by_server(err):  # the submit was answered
                out["quota"] = format_quota(self.ctx, quota, source, request, lang, answered=True) or gr.skip()
            if key == "img.status_error":
                gr.Warning(msg)
            yield _outputs(**out)
            return

        result = item.result
        shown, files, names = self._save(result, lang)
        size = result.parameters.get("size") or req.size
        record = result.to_record()
        record["saved"] = names
        entries = [{
            "image": path, "caption": L.caption(result.seed, req.model, size),
            "settings": {**settings, "seed": result.seed if result.seed is not None else settings["seed"]},
            "record": record, "files": files,
        } for path in shown]
        history = (entries + history)[: L.HISTORY_MAX]
        done = self.t("img.status_done", lang, task=result.task_id, seed=result.seed, size=size or "-",
                      elapsed=result.elapsed, name=Path(names[0]).name if names else "-")
        yield _outputs(
            status=noted(done), gallery=L.gallery_value(history), seed=result.seed, record=record, files=files,
            quota=format_quota(self.ctx, result.quota, source, request, lang, answered=True) or gr.skip(),
            history=history,
        )

    # ------------------------------------------------------------------ public API

    def generate_image(
        self, model: str, prompt: str, negative_prompt: str | None = None, width: int | None = None,
        height: int | None = None, seed: int | None = None, steps: int | None = None,
        guidance: float | None = None, loras: Any = None, image_url: Any = None,
        randomize_seed: bool = False, token_state: Any = None, request: gr.Request = None,
    ) -> tuple[list[tuple[str, str]], dict]:
        """Make an image. Returns the images (with captions) and a JSON record: task_id,
        request_id, seed, size, saved file names. The token comes from the
        X-ModelScope-Token header (or the server's)."""
        lang, sid, student = lang_of(request), session_id(request), self.ctx.student_of(request)
        try:
            req = L.request_from_api(model, prompt, negative_prompt, width, height, seed, steps,
                                     guidance, loras, image_url, randomize_seed)
            token, source = self._token(token_state, request, student)
        except (ModelScopeError, QuotaCapReached) as err:
            raise gr.Error(explain(err, lang, self.ctx.site), print_exception=False) from None
        cancel, seen = threading.Event(), []
        self._register(sid, cancel)
        try:
            client = ImageClient(token, self.ctx.base_url, timeout=image_timeout(self.ctx))
            result = client.generate(req, cancel=cancel, on_status=seen.append)
        except BaseException as err:
            self.ctx.settle(err, source, student, started=bool(seen))
            if not isinstance(err, ModelScopeError):
                raise
            raise gr.Error(self.explain_failure(err, seen[-1] if seen else None, lang), print_exception=False) from None
        finally:
            cancel.set()
            self._unregister(sid, cancel)
        shown, _files, names = self._save(result, lang)
        size = result.parameters.get("size") or req.size
        record = {**result.to_record(), "saved": names}
        return [(p, L.caption(result.seed, req.model, size)) for p in shown], record

    # ------------------------------------------------------------------ small helpers

    def cancel(self, request: gr.Request) -> str:
        lang, sid = lang_of(request), session_id(request)
        with self._lock:
            running = dict(self._running.get(sid, {}))
        for event in running:
            event.set()
        if not running:
            return self.t("img.nothing_running", lang)
        tasks = ", ".join(f"`{t}`" for t in running.values() if t)
        return self.t("img.status_cancelled", lang, task=tasks or "-")

    def family_note(self, model, lang: str) -> str:
        fam = catalog.image_family(model or "")
        return self.t("img.family", lang, family=fam.name, lo=fam.min_side, hi=fam.max_side)

    def on_model_change(self, model, width, height, request: gr.Request):
        """Width/height ranges follow the model's family; the edit section shows for edit models."""
        fam = catalog.image_family(model or "")
        return (
            gr.update(minimum=fam.min_side, maximum=fam.max_side, value=L.clamp_side(width, fam)),
            gr.update(minimum=fam.min_side, maximum=fam.max_side, value=L.clamp_side(height, fam)),
            gr.update(visible=catalog.is_edit_model(model or "")),
            self.family_note(model, lang_of(request)),
        )

    def preset(self, model, ratio: str):
        return L.preset_size(catalog.image_family(model or ""), ratio)

    def swap(self, model, width, height):
        fam = catalog.image_family(model or "")
        return L.clamp_side(height, fam), L.clamp_side(width, fam)

    def normalise(self, table, request: gr.Request):
        try:
            return L.normalised_table(table)
        except ValidationError as err:
            gr.Warning(explain(err, lang_of(request), self.ctx.site))
            return gr.skip()

    def select(self, evt: gr.SelectData):
        return evt.index

    def reuse_seed(self, history, request: gr.Request):
        if not history:
            gr.Warning(self.t("img.no_selection", lang_of(request)))
            return gr.skip(), gr.skip()
        return history[0]["settings"].get("seed"), False

    def reuse(self, history, selected, request: gr.Request):
        """Every control back as it was for the selected (else newest) image."""
        if not history:
            gr.Warning(self.t("img.no_selection", lang_of(request)))
            return tuple(gr.skip() for _ in range(13))
        index = selected if isinstance(selected, int) and 0 <= selected < len(history) else 0
        v = L.restore_values(history[index]["settings"])
        fam = v["family"]
        return (
            v["prompt"], v["negative_prompt"], v["model"],
            gr.update(minimum=fam.min_side, maximum=fam.max_side, value=v["width"]),
            gr.update(minimum=fam.min_side, maximum=fam.max_side, value=v["height"]),
            v["use_defaults"], v["steps"], v["guidance"], v["seed"], False, v["loras"],
            v["image_urls"], gr.update(visible=catalog.is_edit_model(v["model"])),
        )

