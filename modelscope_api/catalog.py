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
)
DEFAULT_VISION_MODEL = VISION_MODELS[0]

IMAGE_MODELS = (
    "Qwen/Qwen-Image",
    "black-forest-labs/FLUX.1-Krea-dev",
    "Tongyi-MAI/Z-Image-Turbo",
    "MAILAND/majicflus_v1",
    "stabilityai/stable-diffusion-xl-base-1.0",
)
DEFAULT_IMAGE_MODEL = IMAGE_MODELS[0]

EDIT_MODELS = (
    "Qwen/Qwen-Image-Edit",
    "Qwen/Qwen-Image-Edit-2509",
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
