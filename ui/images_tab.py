"""The Images tab: text-to-image and image editing, with the task's id and status while it
runs, the Python behind the request, a per-session gallery, and "reuse settings".

Layout and wiring only; the handlers live in `images_handlers`, the pure steps in
`images_logic`. app.py wraps `build(ctx, shared)` in a Tab and merges `STRINGS`.
"""

from __future__ import annotations

import gradio as gr
from gradio.i18n import I18nData

from modelscope_api import catalog, wire

from . import images_logic as L
from .code import code_accordion
from .context import AppContext
from .images_handlers import ImageHandlers
from .shared import Shared

STRINGS = {
    "en": {
        "img.prompt": "Prompt",
        "img.prompt_ph": "A clown under the White Pagoda in Beihai Park, blowing bubbles",
        "img.negative": "Negative prompt (what you do not want)",
        "img.model": "Image model",
        "img.model_info": "Pick one, or type any ModelScope model id",
        "img.family": "📐 {family} models: {lo}–{hi} px per side",
        "img.width": "Width (px)",
        "img.height": "Height (px)",
        "img.swap": "⇄ Swap",
        "img.advanced": "Advanced: steps, guidance, seed, LoRA",
        "img.use_defaults": "Use the model's default steps and guidance",
        "img.steps": "Steps",
        "img.guidance": "Guidance",
        "img.seed": "Seed",
        "img.seed_info": "0 to 2147483647; the same seed and settings give the same picture",
        "img.randomize": "New random seed each run",
        "img.reuse_seed": "Reuse last seed",
        "img.loras": "LoRA (optional): up to 6 rows; with several, the weights must sum to 1",
        "img.normalise": "Normalise weights (make them sum to 1)",
        "img.edit": "Images to edit",
        "img.edit_urls": "Image URLs, one per line",
        "img.edit_uploads": "…or upload images",
        "img.generate": "Generate",
        "img.cancel": "Cancel",
        "img.gallery": "Your images (only you see them)",
        "img.reuse": "Reuse settings of the selected image",
        "img.downloads": "Download: image + JSON record",
        "img.record": "Record of the last image (JSON)",
        "img.status_submitting": "⏳ Sending the request…",
        "img.status_line": "⏳ Task `{task}` · **{status}** · {elapsed:.1f} s · {polls} polls",
        "img.status_done": "✅ Task `{task}` · **SUCCEED** · seed {seed} · {size} · {elapsed:.1f} s · saved as `{name}`",
        "img.status_error": "❌ {msg}",
        "img.status_invalid": "⚠️ {msg}",
        "img.status_cancelled": "⏹️ Cancelled: task {task} is no longer polled.",
        "img.nothing_running": "Nothing is running.",
        "img.no_selection": "Make an image first, then select it in the gallery.",
        "img.save_failed": "The image is shown but could not be saved on the server: {msg}",
        "img.shrunk": "📐 {name} was shrunk from {w0}×{h0} to {w}×{h} pixels before it was sent: the service takes at most {limit} px a side.",
        "img.compressed": "📐 {name} was compressed from {mb0} MB to {mb} MB before it was sent, to keep the request small.",
    },
    "zh": {
        "img.prompt": "提示词",
        "img.prompt_ph": "一个小丑在北海公园的白塔下吹泡泡",
        "img.negative": "反向提示词（不想要的内容）",
        "img.model": "图像模型",
        "img.model_info": "从列表中选择，或输入任意 ModelScope 模型 id",
        "img.family": "📐 {family} 系列模型：每边 {lo}–{hi} 像素",
        "img.width": "宽度（像素）",
        "img.height": "高度（像素）",
        "img.swap": "⇄ 交换宽高",
        "img.advanced": "高级设置：步数、引导系数、种子、LoRA",
        "img.use_defaults": "使用模型默认的步数和引导系数",
        "img.steps": "步数",
        "img.guidance": "引导系数",
        "img.seed": "随机种子",
        "img.seed_info": "0 到 2147483647；相同的种子和设置会得到相同的图片",
        "img.randomize": "每次使用新的随机种子",
        "img.reuse_seed": "沿用上次的种子",
        "img.loras": "LoRA（可选）：最多 6 行；多个 LoRA 时权重之和必须为 1",
        "img.normalise": "归一化权重（使其和为 1）",
        "img.edit": "要编辑的图片",
        "img.edit_urls": "图片网址，每行一个",
        "img.edit_uploads": "……或上传图片",
        "img.generate": "生成",
        "img.cancel": "取消",
        "img.gallery": "你的图片（只有你能看到）",
        "img.reuse": "沿用所选图片的设置",
        "img.downloads": "下载：图片 + JSON 记录",
        "img.record": "上一张图片的记录（JSON）",
        "img.status_submitting": "⏳ 正在发送请求……",
        "img.status_line": "⏳ 任务 `{task}` · **{status}** · {elapsed:.1f} 秒 · 已查询 {polls} 次",
        "img.status_done": "✅ 任务 `{task}` · **SUCCEED** · 种子 {seed} · {size} · {elapsed:.1f} 秒 · 已保存为 `{name}`",
        "img.status_error": "❌ {msg}",
        "img.status_invalid": "⚠️ {msg}",
        "img.status_cancelled": "⏹️ 已取消：不再查询任务 {task}。",
        "img.nothing_running": "当前没有正在进行的任务。",
        "img.no_selection": "请先生成一张图片，再在图库中选中它。",
        "img.save_failed": "图片已显示，但没能保存到服务器：{msg}",
        "img.shrunk": "📐 发送前已将 {name} 从 {w0}×{h0} 缩小到 {w}×{h} 像素：服务每边最多接受 {limit} 像素。",
        "img.compressed": "📐 发送前已将 {name} 从 {mb0} MB 压缩到 {mb} MB，以免请求过大。",
    },
}

_COUNTER_JS = f"""(text) => {{
  const n = [...(text || "")].length;
  return (n >= {wire.PROMPT_MAX_CHARS} ? "⚠️ " : "") + n + " / {wire.PROMPT_MAX_CHARS}";
}}"""


def _(key: str) -> I18nData:
    return I18nData(key)


def build(ctx: AppContext, shared: Shared) -> ImageHandlers:
    """Create the tab's contents inside the caller's gr.Tab; returns the handlers (for tests)."""
    h = ImageHandlers(ctx, STRINGS)
    fam = catalog.image_family(catalog.DEFAULT_IMAGE_MODEL)
    history = gr.State([])  # this session's images, newest first: {image, caption, settings, record, files}
    selected = gr.State(None)
    io = dict(concurrency_limit=ctx.concurrency, concurrency_id="images")
    quick = dict(queue=False, api_visibility="private")  # instant, no toasts needed
    light = dict(api_visibility="private", concurrency_limit=None)  # queued so gr.Warning shows

    with gr.Row():
        with gr.Column(scale=5):
            prompt = gr.Textbox(label=_("img.prompt"), placeholder=_("img.prompt_ph"), lines=3)
            prompt_count = gr.Markdown(f"0 / {wire.PROMPT_MAX_CHARS}", elem_classes="img-counter")
            negative = gr.Textbox(label=_("img.negative"), lines=1)
            negative_count = gr.Markdown(f"0 / {wire.PROMPT_MAX_CHARS}", elem_classes="img-counter")
            model = gr.Dropdown(
                choices=list(catalog.IMAGE_MODELS + catalog.EDIT_MODELS), value=catalog.DEFAULT_IMAGE_MODEL,
                allow_custom_value=True, label=_("img.model"), info=_("img.model_info"),
            )
            family_md = gr.Markdown(h.family_note(catalog.DEFAULT_IMAGE_MODEL, "en"))
            with gr.Row():
                width = gr.Slider(fam.min_side, fam.max_side, value=fam.default_side, step=L.SIDE_STEP,
                                  label=_("img.width"))
                height = gr.Slider(fam.min_side, fam.max_side, value=fam.default_side, step=L.SIDE_STEP,
                                   label=_("img.height"))
            with gr.Row():
                presets = {r: gr.Button(r, size="sm", min_width=60) for r in L.RATIOS}
                swap = gr.Button(_("img.swap"), size="sm", min_width=60)
            with gr.Group(visible=catalog.is_edit_model(catalog.DEFAULT_IMAGE_MODEL)) as edit_group:
                image_urls = gr.Textbox(label=_("img.edit_urls"), lines=2, placeholder="https://…/photo.png")
                uploads = gr.File(label=_("img.edit_uploads"), file_count="multiple", file_types=["image"],
                                  type="filepath")
            with gr.Accordion(_("img.advanced"), open=False):
                use_defaults = gr.Checkbox(True, label=_("img.use_defaults"))
                with gr.Row():
                    steps = gr.Slider(wire.STEPS_MIN, wire.STEPS_MAX, value=L.DEFAULT_STEPS, step=1,
                                      label=_("img.steps"), interactive=False)
                    guidance = gr.Slider(wire.GUIDANCE_MIN, wire.GUIDANCE_MAX, value=L.DEFAULT_GUIDANCE,
                                         step=0.1, label=_("img.guidance"), interactive=False)
                with gr.Row():
                    seed = gr.Number(0, precision=0, label=_("img.seed"), info=_("img.seed_info"))
                    with gr.Column(min_width=160):
                        randomize = gr.Checkbox(True, label=_("img.randomize"))
                        reuse_seed = gr.Button(_("img.reuse_seed"), size="sm")
                loras = gr.Dataframe(
                    value=L.loras_table(None), headers=["LoRA repo id", "weight"], datatype=["str", "number"],
                    type="array", row_count=L.LORA_ROWS_SHOWN, column_count=2, label=_("img.loras"), interactive=True,
                )
                normalise = gr.Button(_("img.normalise"), size="sm")
            with gr.Row():
                generate = gr.Button(_("img.generate"), variant="primary")
                cancel = gr.Button(_("img.cancel"), variant="stop")
            status = gr.Markdown("")
        with gr.Column(scale=6):
            gallery = gr.Gallery(label=_("img.gallery"), columns=2, height="auto", interactive=False, object_fit="contain",
                                 buttons=["download", "fullscreen"])
            reuse = gr.Button(_("img.reuse"), size="sm")
            files = gr.File(label=_("img.downloads"), file_count="multiple", interactive=False)
            with gr.Accordion(_("img.record"), open=False):
                record = gr.JSON()
            code = code_accordion()  # the Python behind this session's last request

    # The public endpoint's own inputs, named after the wire (hidden from the page).
    with gr.Column(visible=False):
        api_in = dict(
            model=gr.Textbox(catalog.DEFAULT_IMAGE_MODEL), prompt=gr.Textbox(), negative_prompt=gr.Textbox(),
            width=gr.Number(None, precision=0), height=gr.Number(None, precision=0),
            seed=gr.Number(None, precision=0), steps=gr.Number(None, precision=0), guidance=gr.Number(None),
            loras=gr.JSON(None), image_url=gr.JSON(None), randomize_seed=gr.Checkbox(False),
        )
        api_gallery, api_record = gr.Gallery(label="images"), gr.JSON(label="record")
        api_trigger = gr.Button()

    # ---- wiring: cheap UI events stay in the browser or skip the queue
    prompt.change(None, prompt, prompt_count, js=_COUNTER_JS, trigger_mode="always_last")
    negative.change(None, negative, negative_count, js=_COUNTER_JS, trigger_mode="always_last")
    model.change(h.on_model_change, [model, width, height], [width, height, edit_group, family_md], **quick)
    for ratio, button in presets.items():
        button.click(lambda m, r=ratio: h.preset(m, r), model, [width, height], **quick)
    swap.click(h.swap, [model, width, height], [width, height], **quick)
    use_defaults.change(lambda d: (gr.update(interactive=not d),) * 2, use_defaults, [steps, guidance], **quick)
    normalise.click(h.normalise, loras, loras, **light)
    gallery.select(h.select, None, selected, **quick)
    reuse_seed.click(h.reuse_seed, history, [seed, randomize], **light)
    reuse.click(h.reuse, [history, selected],
                [prompt, negative, model, width, height, use_defaults, steps, guidance, seed, randomize,
                 loras, image_urls, edit_group], **light)

    # ---- the I/O-bound events
    run = generate.click(
        h.generate,
        [prompt, negative, model, width, height, use_defaults, steps, guidance, seed, randomize, loras,
         image_urls, uploads, shared.token_state, history],
        [status, gallery, seed, code, record, files, shared.quota_md, history],
        api_visibility="private", show_progress="full", show_progress_on=[gallery], **io,
    )
    cancel.click(h.cancel, None, status, cancels=[run], **light)
    api_trigger.click(
        h.generate_image, [*api_in.values(), shared.token_state], [api_gallery, api_record],
        api_name="generate_image", api_visibility="public", show_progress="hidden",
        # raw values reach request_from_api, whose validation names the field: Gradio's own
        # Number preprocessing would crash on "abc" with a generic error instead
        preprocess=False, **io,
    )
    return h
