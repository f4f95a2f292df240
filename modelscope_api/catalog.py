"""Models by kind, and the image families whose size limits differ.

Curated lists for the dropdowns; any other model id is accepted (the server answers 400
"has no provider supported" for ids it does not serve).
"""

from __future__ import annotations

from dataclasses import dataclass

CHAT_MODELS = (
    "Qwen/Qwen3-235B-A22B-Instruct-2507",
    "Qwen/Qwen3-32B",
    "Qwen/Qwen3-8B",
    "Qwen/QwQ-32B",
    "deepseek-ai/DeepSeek-R1-0528",
    "deepseek-ai/DeepSeek-V3.1",
    "Qwen/Qwen2.5-Coder-32B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
)
DEFAULT_CHAT_MODEL = CHAT_MODELS[0]

VISION_MODELS = (
    "Qwen/Qwen2.5-VL-72B-Instruct",
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "Qwen/QVQ-72B-Preview",
    "Qwen/Qwen3-VL-235B-A22B-Instruct",
    "Qwen/Qwen3-VL-30B-A3B-Instruct",
    "Qwen/Qwen3-VL-8B-Instruct",
)
DEFAULT_VISION_MODEL = VISION_MODELS[0]

IMAGE_MODELS = (
    "Qwen/Qwen-Image",
    "Qwen/Qwen-Image-2512",
    "black-forest-labs/FLUX.1-Krea-dev",
    "Tongyi-MAI/Z-Image-Turbo",
    "MAILAND/majicflus_v1",
    "stabilityai/stable-diffusion-xl-base-1.0",
)
DEFAULT_IMAGE_MODEL = IMAGE_MODELS[0]

EDIT_MODELS = (
    "Qwen/Qwen-Image-Edit",
    "Qwen/Qwen-Image-Edit-2509",
    "black-forest-labs/FLUX.1-Kontext-dev",  # FLUX family: 64-1024 px a side
)


@dataclass(frozen=True)
class ImageFamily:
    name: str
    min_side: int
    max_side: int
    default_side: int

    @property
    def size_range(self) -> str:
        return f"{self.min_side}x{self.min_side} to {self.max_side}x{self.max_side}"


# The official table's ranges. SD is the family of any model not recognised.
SD = ImageFamily("SD", 64, 2048, 1024)
FLUX = ImageFamily("FLUX", 64, 1024, 1024)
QWEN_IMAGE = ImageFamily("Qwen-Image", 64, 1664, 1328)
Z_IMAGE_TURBO = ImageFamily("Z-Image-Turbo", 512, 2048, 1024)
FAMILIES = (SD, FLUX, QWEN_IMAGE, Z_IMAGE_TURBO)


def _lower(model) -> str:
    """A model id for matching; anything not text (a stranger's payload) matches nothing."""
    return model.lower() if isinstance(model, str) else ""


def image_family(model: str) -> ImageFamily:
    m = _lower(model)
    if "z-image" in m:
        return Z_IMAGE_TURBO
    if "qwen-image" in m:
        return QWEN_IMAGE
    if "flux" in m or "majicflus" in m:
        return FLUX
    return SD


def is_edit_model(model: str) -> bool:
    m = _lower(model)
    return (isinstance(model, str) and model in EDIT_MODELS) or "edit" in m or "kontext" in m


# Thinking: Qwen3 hybrid models take the enable_thinking switch; QwQ / R1 / QVQ always reason.
THINKING_SWITCH = "switch"
THINKING_ALWAYS = "always"
THINKING_NONE = "none"


def thinking_mode(model: str) -> str:
    m = _lower(model)
    if any(k in m for k in ("qwq", "qvq", "deepseek-r1", "-thinking")):
        return THINKING_ALWAYS
    if "qwen3" in m and "instruct" not in m and "coder" not in m and "vl" not in m:
        return THINKING_SWITCH
    return THINKING_NONE


# What a model id is for, for sorting the service's own list (GET /v1/models names no kind).
KIND_CHAT = "chat"
KIND_VISION = "vision"
KIND_IMAGE = "image"
KIND_EDIT = "edit"
KIND_OTHER = "other"  # embeddings, rerankers, speech: not for any tab
_IMAGE_MARKS = ("qwen-image", "flux", "majicflus", "stable-diffusion", "sdxl", "z-image", "kolors",
                "text-to-image", "-t2i", "hunyuanimage", "wan2")
_OTHER_MARKS = ("embedding", "rerank", "whisper", "-tts", "cosyvoice", "-asr", "speech", "bge-")


def kind_of(model: str) -> str:
    """chat, vision, image, edit or other for a model id (curated lists first, then its name)."""
    m = _lower(model)
    if not m:
        return KIND_OTHER
    if model in CHAT_MODELS:
        return KIND_CHAT
    if model in VISION_MODELS:
        return KIND_VISION
    if model in EDIT_MODELS:
        return KIND_EDIT
    if model in IMAGE_MODELS:
        return KIND_IMAGE
    if any(k in m for k in _OTHER_MARKS):
        return KIND_OTHER
    if any(k in m for k in _IMAGE_MARKS) or "kontext" in m:
        return KIND_EDIT if is_edit_model(model) else KIND_IMAGE
    if "-vl" in m or "qvq" in m or "vl-" in m or "-omni" in m:
        return KIND_VISION
    return KIND_CHAT
