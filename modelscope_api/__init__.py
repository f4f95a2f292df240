"""A thin, reusable client for ModelScope API-Inference (chat, vision, text-to-image).

Never imports gradio: it knows the wire; the UI knows people.
"""

from . import catalog, wire
from .anthropic_chat import AnthropicChatClient
from .chat import (
    ChatClient,
    ChatDone,
    ChatRequest,
    ChatResult,
    ContentDelta,
    ReasoningDelta,
    image_part,
    image_to_data_url,
    vision_message,
)
from .config import Settings, resolve_base_url, resolve_token
from .errors import (
    AccountNotBoundError,
    APIConnectionError,
    AuthenticationError,
    ImageDownloadError,
    IncompleteStreamError,
    InvalidRequestError,
    MissingTokenError,
    ModelScopeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
    ValidationError,
)
from .images import (
    GeneratedImage,
    ImageClient,
    ImageRequest,
    ImageResult,
    PollSchedule,
    StatusUpdate,
    normalize_lora_weights,
)
from .quota import Quota

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError", "AccountNotBoundError", "AnthropicChatClient", "AuthenticationError",
    "ChatClient",
    "ChatDone", "ChatRequest", "ChatResult", "ContentDelta", "GeneratedImage", "ImageClient",
    "ImageDownloadError", "ImageRequest", "ImageResult", "IncompleteStreamError", "InvalidRequestError",
    "MissingTokenError", "ModelScopeError", "PermissionDeniedError", "PollSchedule", "Quota",
    "RateLimitError", "ReasoningDelta", "ServerError", "Settings", "StatusUpdate",
    "TaskCancelledError", "TaskFailedError", "TaskNotFoundError", "TaskTimeoutError", "ValidationError", "catalog",
    "image_part", "image_to_data_url", "normalize_lora_weights", "resolve_base_url",
    "resolve_token", "vision_message", "wire",
]
