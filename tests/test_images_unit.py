"""Pure steps of the image flow: validation on both sides of every boundary, payload, parsing."""

import math

import pytest

from modelscope_api import catalog, wire
from modelscope_api.errors import ModelScopeError, ValidationError
from modelscope_api.images import (
    ImageRequest,
    PollSchedule,
    build_payload,
    lora_items,
    normalize_lora_weights,
    parse_size,
    parse_submit,
    parse_task,
    wire_loras,
)

QWEN = "Qwen/Qwen-Image"
FLUX = "black-forest-labs/FLUX.1-Krea-dev"
ZIT = "Tongyi-MAI/Z-Image-Turbo"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"


def req(**kw):
    base = {"model": QWEN, "prompt": "a golden cat"}
    base.update(kw)
    return ImageRequest(**base)


def rejects(field, **kw):
    with pytest.raises(ValidationError) as info:
        req(**kw).validate()
    assert info.value.field.startswith(field), info.value
    return info.value


def test_minimal_payload_is_model_and_prompt():
    assert build_payload(req()) == {"model": QWEN, "prompt": "a golden cat"}


def test_full_payload_uses_wire_names():
    body = build_payload(req(negative_prompt="blurry", width=1024, height=768, seed=7, steps=30,
                             guidance=3.5, loras=[("a/b", 0.6), ("c/d", 0.4)]))
    assert body == {"model": QWEN, "prompt": "a golden cat", "negative_prompt": "blurry",
                    "size": "1024x768", "seed": 7, "steps": 30, "guidance": 3.5,
                    "loras": {"a/b": 0.6, "c/d": 0.4}}


@pytest.mark.parametrize("prompt", ["", "   ", None])
def test_empty_prompt(prompt):
    rejects("prompt", prompt=prompt)


def test_prompt_length_boundary():
    req(prompt="x" * (wire.PROMPT_MAX_CHARS - 1)).validate()
    err = rejects("prompt", prompt="x" * wire.PROMPT_MAX_CHARS)
    assert "2000" in str(err)
    req(negative_prompt="n" * 1999).validate()
    rejects("negative_prompt", negative_prompt="n" * 2000)


@pytest.mark.parametrize("model,lo,hi", [
    (SDXL, 64, 2048), (FLUX, 64, 1024), ("MAILAND/majicflus_v1", 64, 1024),
    (QWEN, 64, 1664), (ZIT, 512, 2048),
])
def test_size_ranges_per_family(model, lo, hi):
    req(model=model, width=lo, height=lo).validate()
    req(model=model, width=hi, height=hi).validate()
    err = rejects("width", model=model, width=lo - 1, height=lo)
    assert f"{lo} to {hi}" in str(err)
    rejects("height", model=model, width=hi, height=hi + 1)


def test_unknown_model_is_sd_family():
    assert catalog.image_family("someone/some-model") is catalog.SD


@pytest.mark.parametrize("bad", [1024.5, "1024", None, True])
def test_size_must_be_whole_numbers(bad):
    rejects("", width=bad, height=1024)


def test_parse_size():
    assert parse_size("1024x768") == (1024, 768)
    assert parse_size(" 512 X 512 ") == (512, 512)
    for bad in ("16:9", "1024", "axb", "1024x", "-5x10"):
        with pytest.raises(ValidationError):
            parse_size(bad)


@pytest.mark.parametrize("name,ok,bad", [
    ("seed", [0, 2**31 - 1], [-1, 2**31, 1.5]),
    ("steps", [1, 100], [0, 101, 2.5]),
    ("guidance", [1.5, 20, 7], [1.4, 20.1, math.nan]),
])
def test_numeric_boundaries(name, ok, bad):
    for value in ok:
        req(**{name: value}).validate()
    for value in bad:
        rejects(name, **{name: value})


def test_one_lora_is_sent_as_a_string():
    assert build_payload(req(loras=[("owner/lora", None)]))["loras"] == "owner/lora"
    assert build_payload(req(loras="owner/lora"))["loras"] == "owner/lora"
    assert wire_loras({"owner/lora": 1.0}) == "owner/lora"


def test_lora_rules():
    six = [(f"o/l{i}", 1 / 6) for i in range(6)]
    req(loras=six).validate()
    rejects("loras", loras=six + [("o/l6", 0.0)])
    rejects("loras", loras=[("a/b", 0.5), ("c/d", 0.4)])  # sums to 0.9
    rejects("loras", loras=[("a/b", 1.2), ("c/d", -0.2)])  # negative weight
    rejects("loras", loras=[("", 0.5), ("c/d", 0.5)])  # a weight without an id
    rejects("loras", loras=[("not-a-repo", 1.0)])
    rejects("loras", loras=[("a/b", 0.5), ("a/b", 0.5)])
    rejects("loras", loras=[("a/b", "abc")])


def test_empty_table_rows_are_ignored():
    rows = [["a/b", 0.6], ["", None], [None, math.nan], ["c/d", "0.4"], ["  ", ""]]
    assert lora_items(rows) == [("a/b", 0.6), ("c/d", 0.4)]
    assert build_payload(req(loras=rows))["loras"] == {"a/b": 0.6, "c/d": 0.4}


def test_normalise_sums_to_exactly_one():
    out = normalize_lora_weights([("a/b", 1), ("c/d", 1), ("e/f", 1)])
    assert sum(w for _, w in out) == 1.0
    assert [r for r, _ in out] == ["a/b", "c/d", "e/f"]
    assert normalize_lora_weights([("a/b", 3), ("c/d", 1)]) == [("a/b", 0.75), ("c/d", 0.25)]
    assert normalize_lora_weights([("a/b", None), ("c/d", None)]) == [("a/b", 0.5), ("c/d", 0.5)]
    req(loras=normalize_lora_weights([("a/b", 0.3), ("c/d", 0.3), ("e/f", 0.3)])).validate()
    with pytest.raises(ValidationError):
        normalize_lora_weights([("a/b", -1), ("c/d", 1)])


def test_image_url_rules():
    edit = "Qwen/Qwen-Image-Edit"
    rejects("image_url", model=edit)  # edit model needs an image
    req(model=edit, image_url="https://example.com/a.png").validate()
    req(model=edit, image_url=["https://example.com/a.png", "data:image/png;base64,AAAA"]).validate()
    for bad in ("example.com/a.png", "ftp://x/y.png", "data:text/plain;base64,AA", "http://"):
        rejects("image_url", model=edit, image_url=bad)
    body = build_payload(req(model=edit, image_url=["https://e.com/1.png", "https://e.com/2.png"]))
    assert body["image_url"] == ["https://e.com/1.png", "https://e.com/2.png"]
    assert build_payload(req(model=edit, image_url=["https://e.com/1.png"]))["image_url"] == "https://e.com/1.png"


def test_validation_message_names_field_value_and_range():
    err = rejects("steps", steps=101)
    assert err.field == "steps" and err.value == 101 and "1 to 100" in err.allowed
    assert "steps" in str(err) and "101" in str(err)


def test_parse_submit_treats_succeed_as_submitted():
    sub = parse_submit({"task_id": 12345, "request_id": "r1", "task_status": "SUCCEED"})
    assert sub.task_id == "12345" and sub.request_id == "r1"
    with pytest.raises(ModelScopeError):
        parse_submit({"task_status": "SUCCEED"})


def test_parse_task_states():
    running = parse_task({"task_status": "PROCESSING", "outputs": {}, "task_id": "", "request_id": ""})
    assert running.status == "PROCESSING" and not running.done and not running.failed
    assert running.request_id is None
    done = parse_task({"task_status": "SUCCEED", "output_images": ["https://x/1.png"],
                       "time_taken": 41152.7, "input": {"seed": 42, "size": "1024x1024"},
                       "request_id": "r", "task_id": ""})
    assert done.done and done.image_urls == ("https://x/1.png",)
    assert done.time_taken_ms == 41152.7 and done.inputs["seed"] == 42
    failed = parse_task({"task_status": "FAILED", "errors": {"code": 422, "message": "Output data may contain inappropriate content."}})
    assert failed.failed and failed.error_code == 422 and "inappropriate" in failed.error_message


def test_poll_schedule_meets_the_latency_goal():
    s = PollSchedule()
    assert s.interval(0) <= 0.5
    t, polls = 0.0, 0
    while t < 3.0:  # a 3 s task
        t += s.interval(polls)
        polls += 1
    assert polls <= 12
    assert s.interval(polls - 1) <= 0.5  # the poll that sees it is at most 0.5 s late
    assert s.interval(200) == 3.0
