"""Every fact about ModelScope API-Inference's wire, in one place.

See ../shared/modelscope-protocol.md. Both the client and the simulator import from here,
so a header name or a status word can never drift between them.
"""

DEFAULT_BASE_URL = "https://api-inference.modelscope.cn/"
# The international host (same paths) for accounts registered on modelscope.ai.
INTERNATIONAL_BASE_URL = "https://api-inference.modelscope.ai/"
# The website whose token and account pages belong to an API host: (host suffix, site).
SITES = (("modelscope.ai", "https://modelscope.ai"), ("modelscope.cn", "https://modelscope.cn"))
DEFAULT_SITE = "https://modelscope.cn"
TOKEN_PAGE_PATH = "/my/myaccesstoken"
ACCOUNT_PAGE_PATH = "/my/account"  # bind Aliyun, real-name verification

# Paths, relative to the base URL (which ends with "/").
CHAT_PREFIX = "v1/"  # the openai SDK's base_url is BASE + CHAT_PREFIX
CHAT_COMPLETIONS_PATH = "v1/chat/completions"
MODELS_PATH = "v1/models"
IMAGES_PATH = "v1/images/generations"
TASK_PATH = "v1/tasks/{task_id}"
# Anthropic-compatible (beta): the anthropic SDK's base_url is BASE without "/v1" (and without
# the trailing "/"); the SDK appends "/v1/messages" itself.
ANTHROPIC_MESSAGES_PATH = "v1/messages"

# Headers
AUTHORIZATION = "Authorization"
ASYNC_MODE_HEADER = "X-ModelScope-Async-Mode"
TASK_TYPE_HEADER = "X-ModelScope-Task-Type"
TASK_TYPE_IMAGE = "image_generation"

RATELIMIT_REQUESTS_LIMIT = "modelscope-ratelimit-requests-limit"
RATELIMIT_REQUESTS_REMAINING = "modelscope-ratelimit-requests-remaining"
RATELIMIT_MODEL_REQUESTS_LIMIT = "modelscope-ratelimit-model-requests-limit"
RATELIMIT_MODEL_REQUESTS_REMAINING = "modelscope-ratelimit-model-requests-remaining"

# Task status words. The submit answer says SUCCEED too, but there it only means "submitted".
STATUS_PENDING = "PENDING"
STATUS_RUNNING = "RUNNING"
STATUS_PROCESSING = "PROCESSING"
STATUS_SUCCEED = "SUCCEED"
STATUS_FAILED = "FAILED"
STATUS_CANCELED = "CANCELED"
STATUS_UNKNOWN = "UNKNOWN"
# Only these mean "keep polling"; every other word (SUCCEED, FAILED, CANCELED/CANCEL,
# UNKNOWN, or one never seen before) ends the wait at once.
RUNNING_STATUSES = frozenset({STATUS_PENDING, STATUS_RUNNING, STATUS_PROCESSING})
CANCELED_STATUSES = frozenset({STATUS_CANCELED, "CANCEL", "CANCELLED"})
# Our own word for "the submit call answered"; never sent by the server.
STATUS_SUBMITTED = "SUBMITTED"

# Request limits (official parameter table)
PROMPT_MAX_CHARS = 2000  # prompt and negative_prompt must be *fewer* than this
SEED_MIN, SEED_MAX = 0, 2**31 - 1
STEPS_MIN, STEPS_MAX = 1, 100
GUIDANCE_MIN, GUIDANCE_MAX = 1.5, 20.0
LORAS_MAX = 6
LORA_WEIGHT_SUM = 1.0
LORA_WEIGHT_TOLERANCE = 1e-6

# Pictures (a vision question's image, an image to edit). The service refuses one with a side
# longer than this: 400 "input size exceed limit 2048x2048,current input:(1080,2376)" (a real
# capture; width first). Clients shrink a bigger picture before sending it.
PICTURE_MAX_SIDE = 2048
MSG_PICTURE_TOO_BIG = "input size exceed limit {limit}x{limit},current input:({width},{height})"

# Server messages we recognise (substrings, lower-cased when compared)
MSG_BIND_ALIYUN = "bind your alibaba cloud account"
MSG_AUTH_FAILED = (
    "Authentication failed, please make sure that a valid ModelScope token is supplied."
)
MSG_ASYNC_REQUIRED = (
    "image-gen task currently does not support synchronous calls, "
    "please set header X-ModelScope-Async-Mode: true"
)
MSG_TASK_NOT_FOUND = "task not found"
MSG_THINKING_NON_STREAM = "parameter.enable_thinking must be set to false for non-streaming calls"
# The same 400 in its other wording (code "invalid_parameter_error").
MSG_THINKING_NON_STREAM_ALT = "enable thinking can not be support when stream=False."
THINKING_NON_STREAM_MARKS = ("enable_thinking must be set to false", "enable thinking can not be support")
MSG_NO_PROVIDER_MARK = "has no provider supported"
MSG_RATE_LIMIT = "Request limit exceeded."
MSG_SERVER_BUSY = "Server is busy, please try again later"

# Full server messages the simulator sends (added for the simulator; the client matches the
# lower-cased substrings above where it needs to tell them apart).
MSG_ALIYUN_NOT_BOUND = "Please bind your Alibaba Cloud account before use."
MSG_REAL_NAME_REQUIRED = (
    "Please complete real-name verification of your Alibaba Cloud account before use."
)
MSG_NO_PROVIDER = "Model id : {model} , has no provider supported"  # .format(model=...)
MSG_QUOTA_CN = "达到使用量上限"  # "usage limit reached", sent with code CODE_TOO_MANY_REQUESTS
CODE_TOO_MANY_REQUESTS = "too_many_requests"
MSG_INAPPROPRIATE = "Output data may contain inappropriate content."  # FAILED task, code 422
