"""Text-to-Image tab in a real browser: LoRA table, size presets, task status, gallery, reuse,
and the checks that stop a bad request before anything is sent."""

from __future__ import annotations

import re

import pytest
from pw_helpers import api_requests, set_token, shot

from modelscope_api import catalog
from modelscope_api.config import fingerprint
from ui import images_logic as L

pytestmark = pytest.mark.browser

RUNNING = re.compile(r"Task (\S+) · (PENDING|RUNNING|PROCESSING) · [\d.]+ s")
DONE = re.compile(r"Task (\S+) · SUCCEED · seed (\d+) · (\d+x\d+)")


def open_images_tab(page, advanced: bool = True):
    page.get_by_role("tab", name="Text-to-Image").click()
    if advanced:
        page.get_by_role("button", name=re.compile("^Advanced: steps")).click()
        page.get_by_role("grid", name=re.compile("^LoRA")).wait_for()


def lora_rows(page):
    return page.get_by_role("grid", name=re.compile("^LoRA")).get_by_role("row")


def edit_cell(page, row: int, col: int, text: str) -> None:
    """Double-click a cell of the LoRA table (row 1 = first data row), type, press Enter."""
    cell = lora_rows(page).nth(row).get_by_role("gridcell").nth(col)
    cell.dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def expect_lora_row(page, row: int, repo: str, weight: str) -> None:
    from playwright.sync_api import expect

    cells = lora_rows(page).nth(row).get_by_role("gridcell")
    for cell, value in ((cells.nth(0), repo), (cells.nth(1), weight)):
        # a selected cell also holds its menu buttons (⋮): match the value at the start
        expect(cell).to_have_text(re.compile(rf"^\s*{re.escape(value)}(\s|⋮|$)"))


def size_inputs(page):
    return (page.get_by_role("spinbutton", name="number input for Width (px)"),
            page.get_by_role("spinbutton", name="number input for Height (px)"))


def status_line(page, pattern: re.Pattern):
    return page.get_by_text(pattern)


def test_loras_preset_generate_gallery_and_reuse(new_page, bsim):
    from playwright.sync_api import expect

    prompt = "A red paper lantern over a Hangzhou canal at dusk"
    fam = catalog.image_family(catalog.DEFAULT_IMAGE_MODEL)
    wide = L.preset_size(fam, "16:9")
    square = L.preset_size(fam, "1:1")
    page = new_page()
    set_token(page, "ms-test-painter")
    open_images_tab(page)

    page.get_by_role("textbox", name="Prompt", exact=True).fill(prompt)
    # Two LoRAs with weights 3 and 1, then "normalise" makes them 0.75 and 0.25.
    edit_cell(page, 1, 0, "alice/ink-wash-lora")
    edit_cell(page, 1, 1, "3")
    edit_cell(page, 2, 0, "bob/paper-cut-lora")
    edit_cell(page, 2, 1, "1")
    expect_lora_row(page, 2, "bob/paper-cut-lora", "1")
    page.get_by_role("button", name="Normalise weights").click()
    expect_lora_row(page, 1, "alice/ink-wash-lora", "0.75")
    expect_lora_row(page, 2, "bob/paper-cut-lora", "0.25")

    width, height = size_inputs(page)
    page.get_by_role("button", name="16:9", exact=True).click()
    expect(width).to_have_value(str(wide[0]))
    expect(height).to_have_value(str(wide[1]))
    bsim.clear_log()

    page.get_by_role("button", name="Generate", exact=True).click()
    # While the task runs: its id and status, with the elapsed time.
    running = status_line(page, RUNNING)
    expect(running).to_be_visible()
    task_id = RUNNING.search(running.inner_text()).group(1)
    done = status_line(page, DONE)
    expect(done).to_be_visible(timeout=30_000)
    m = DONE.search(done.inner_text())
    assert m.group(1) == task_id and m.group(3) == f"{wide[0]}x{wide[1]}"
    seed = int(m.group(2))

    # The picture is in the gallery, captioned with its seed, and really loaded.
    thumb = page.get_by_role("button", name=re.compile(r"^Thumbnail 1 of 1"))
    caption = f"seed {seed} · {catalog.DEFAULT_IMAGE_MODEL} · {wide[0]}x{wide[1]}"
    expect(thumb.get_by_role("img", name=caption)).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=thumb.locator("img").element_handle())
    expect(page.get_by_role("spinbutton", name="Seed")).to_have_value(str(seed))
    shot(page, "images")

    api = api_requests(bsim)
    submits = [r for r in api if r.method == "POST" and r.path.endswith("/images/generations")]
    assert len(submits) == 1
    body = submits[0].json
    assert body["prompt"] == prompt and body["model"] == catalog.DEFAULT_IMAGE_MODEL
    assert body["size"] == f"{wide[0]}x{wide[1]}" and body["seed"] == seed
    assert body["loras"] == {"alice/ink-wash-lora": 0.75, "bob/paper-cut-lora": 0.25}
    polls = [r for r in api if r.path.endswith(f"/tasks/{task_id}")]
    assert polls and all(r.token_fingerprint == fingerprint("ms-test-painter") for r in [*submits, *polls])

    # Change things, then "reuse settings" of the picture brings every control back.
    page.get_by_role("textbox", name="Prompt", exact=True).fill("something else entirely")
    page.get_by_role("button", name="1:1", exact=True).click()
    expect(width).to_have_value(str(square[0]))
    edit_cell(page, 1, 0, "carol/other-lora")
    expect_lora_row(page, 1, "carol/other-lora", "0.75")
    page.get_by_role("checkbox", name="New random seed each run").check()
    thumb.click()
    page.get_by_role("button", name="Reuse settings of the selected image").click()
    expect(page.get_by_role("textbox", name="Prompt", exact=True)).to_have_value(prompt)
    expect(width).to_have_value(str(wide[0]))
    expect(height).to_have_value(str(wide[1]))
    expect(page.get_by_role("spinbutton", name="Seed")).to_have_value(str(seed))
    expect(page.get_by_role("checkbox", name="New random seed each run")).not_to_be_checked()
    expect_lora_row(page, 1, "alice/ink-wash-lora", "0.75")
    expect_lora_row(page, 2, "bob/paper-cut-lora", "0.25")


def test_bad_loras_and_size_show_a_message_and_send_nothing(new_page, bsim):
    from playwright.sync_api import expect

    page = new_page()
    set_token(page, "ms-test-careful")
    open_images_tab(page)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("A quiet bamboo forest")
    status = page.get_by_text(re.compile("^⚠️"))

    # Two LoRAs whose weights sum to 1.2: a clear message, nothing sent.
    edit_cell(page, 1, 0, "alice/ink-wash-lora")
    edit_cell(page, 1, 1, "0.5")
    edit_cell(page, 2, 0, "bob/paper-cut-lora")
    edit_cell(page, 2, 1, "0.7")
    expect_lora_row(page, 2, "bob/paper-cut-lora", "0.7")
    bsim.clear_log()
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(status).to_contain_text("sum to 1")
    expect(status).to_contain_text("normalise")
    expect(status).to_contain_text("Nothing was sent")
    expect(page.get_by_test_id("toast-body").filter(has_text="sum to 1")).to_be_visible()
    assert api_requests(bsim) == []

    # Back to one LoRA (fine), then a size out of range for the model's family. The sliders
    # clamp once the model change has made its round trip; on a slow link the person can
    # press Generate first, so the request check must catch it. The round trip is held here.
    edit_cell(page, 2, 0, "")
    edit_cell(page, 2, 1, "")
    held = []

    def hold_model_change(route):
        if "FLUX.1-Krea-dev" in (route.request.post_data or ""):
            held.append(route)
        else:
            route.continue_()

    page.route("**/gradio_api/run/predict", hold_model_change)
    width, _ = size_inputs(page)
    expect(width).to_have_value("1328")  # Qwen-Image's default, above FLUX's 1024 limit
    page.get_by_role("combobox", name="Image model").click()
    page.get_by_role("option", name="black-forest-labs/FLUX.1-Krea-dev").click()
    bsim.clear_log()
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(status).to_contain_text("64 to 1024 pixels for FLUX models")
    expect(status).to_contain_text("Nothing was sent")
    assert held, "the model change was not held back"
    for route in held:
        route.continue_()
    expect(width).to_have_value("1024")
    assert api_requests(bsim) == []
