"""A local simulator of ModelScope API-Inference that speaks the real wire protocol
(shared/modelscope-protocol.md; every name and limit comes from `modelscope_api.wire`).

    from modelscope_api.simulator import Simulator, SimConfig
    with Simulator(SimConfig(task_seconds=0.5, ttft=0.02)) as sim:
        sim.base_url                     # "http://127.0.0.1:PORT/"; chat: sim.base_url + "v1/"

Command line: `python -m modelscope_api.simulator --port 8000 --task-seconds 3`.

Endpoints: POST /v1/chat/completions, POST /v1/messages (Anthropic-compatible, beta; see
below), GET /v1/models, POST /v1/images/generations,
GET /v1/tasks/{id}, GET /_sim/files/{name} (output PNGs, no auth, like the real CDN), and the
admin API under /_sim/ (health, faults, log, tokens, config, quota, tasks/{id}); admin calls
are not logged.

Tokens (`Authorization: Bearer <token>`; raw tokens are never stored, only fingerprints):
  - accepted: tokens added with add_token(t, "ok"), and any `ms-test-*` / `ms-offline-*` token
  - `ms-test-unbound` -> 401 "Please bind your Alibaba Cloud account before use."
  - `ms-test-unverified` -> 403 real-name verification message
  - `ms-test-quota` -> 429 on chat and image submits (polls still work)
  - anything else, or no header -> 401 wire.MSG_AUTH_FAILED
  - GET /v1/models and file downloads need no token.
Quota: chat completions and image submits count (after the token is accepted and the body
parsed, so 400s count too); polls, downloads and model lists do not. Their answers (200, 400
and 429) carry the four modelscope-ratelimit-* headers; when a remaining count is 0 -> 429.

Error-shape rule (deterministic; every JSON body has a uuid "request_id"):
  - chat and /v1/models: {"error": {message, code, type}} for 400/401/403/404;
    {"errors": {message, code}} for 429 ("Request limit exceeded.") and 500 (server busy).
  - images submit, task polls, downloads: {"errors": {message, code}} for 400/401/403/404/500;
    {"error": {code "too_many_requests", message "达到使用量上限", type}} for 429.
  - 502: an nginx HTML page on chat, /v1/models and downloads; JSON "errors" (server busy) on
    images submit and task polls.
  - task not found (no X-ModelScope-Task-Type header, someone else's task, unknown id) is 404.
  - a missing output file answers 404 with an OSS-style XML body.
Chat: a vision model needs an image_url part in some user message, a text model given one
answers 400. A data: picture with a side over wire.PICTURE_MAX_SIDE (2048) in any user
message answers 400 "input size exceed limit 2048x2048,current input:(W,H)" (the real wording;
W and H as stored, the header read in a thread), and so does an image submit whose image_url
holds such a data: picture (images shape); http(s) pictures are never fetched, so never
measured. Thinking ("always" models, "switch" models unless enable_thinking is false)
streams reasoning_content first; a switch model thinking with stream=False is a 400.
With max_tokens the answer is exactly max_tokens tokens (finish_reason "length"), else
40-80 tokens quoting the question (finish_reason "stop").
Anthropic-compatible POST /v1/messages (the anthropic SDK with base_url = sim.base_url
without the trailing "/"): the token may come as `x-api-key` (older anthropic SDKs; logged
as a fingerprint) or Bearer (anthropic 2.x); same token behaviours, quota counting and
headers, and request faults (500/502/429, stream_cut, slow_first_token; scope "chat") as
chat. Errors use {"type": "error", "error": {type, message}, "request_id"}. max_tokens is required (else 400)
and caps the 40-80 token answer (stop_reason "max_tokens", else "end_turn"); stream=true
sends event:/data: SSE (message_start, content_block_start, ping, content_block_delta per
token, content_block_stop, message_delta, message_stop).
Tasks: PENDING for the first `pending_fraction` of task_seconds (with ids), then RUNNING, then
PROCESSING (ids ""), then SUCCEED with output_images/time_taken/input. The "input" reports the
parameters used, including the seed the server picked; data: URLs are abbreviated there.

Faults — `sim.inject(name, token=None, times=1, scope=None)` (times=None: forever; scope one of
chat/images/task/download/models), POST /_sim/faults, or the request header
`X-Sim-Fault: name[,name]` (that request only):
  - "500": 500 server busy. "502": 502 (HTML or JSON, see above). "429": a 429 in the
    endpoint's shape, not counted. These three hit the next API call matching scope/token
    (unscoped ones never hit downloads; use scope="download" for those).
  - "slow_first_token": the next chat waits SimConfig.slow_ttft (default 8 s) before its first
    token (non-streaming calls wait as long).
  - "stream_cut": the next streamed chat stops after about half its tokens without [DONE]; the
    connection is dropped mid-body (the client sees an incomplete chunked read).
  - "malformed_chunk": the next streamed chat sends one `data:` line that is not JSON, midway,
    then carries on normally.
  - "task_failed": the next submitted task ends FAILED (code 422, inappropriate content).
  - "spurious_failed": the next submitted task's first poll says FAILED; later polls are normal.
  - "task_never_finishes": the next submitted task stays RUNNING forever.
  - "image_404": the next submitted task's output URL answers 404 (scope="download": the next
    download answers 404 instead).
  - "task_not_found": the next poll answers 404 task not found.
  Task faults (task_failed*, task_canceled, task_unknown, spurious_failed,
  task_never_finishes, image_404) are attached to the task by the submit that consumes them.
  Replies quoted from other clients' captures of the real service (protocol page, "More from
  real captures"):
  - "task_canceled" / "task_unknown": the task ends CANCELED / UNKNOWN (no reason, no image).
  - "task_failed_flat" / "task_failed_error": the task ends FAILED with its reason in a flat
    `error_message` (+ `error_code`) / in `error.message` with the request id inside `error`.
  - "hollow_reply": the next chat answers 200 carrying nothing: `"choices": null`,
    `"object": ""`, `"created": 0`, zero usage (streamed: a null-choices and an empty-choices
    chunk, then [DONE]).
  - "hollow_chunks": the next streamed chat mixes keep-alive chunks (`"choices": null` / `[]`)
    into a normal answer and sends its usage in a chunk of its own with no choices.
  - "thinking_alt_wording": a thinking call without streaming gets the other wording of the
    400 ("enable thinking can not be support when stream=False.", code invalid_parameter_error).
  - "unbound_inner_id": the next call answers 401 "Please bind your Alibaba Cloud account
    before use." with the request_id inside the error object (request fault, like "500").
  - "bare_400": the next call answers 400 with an empty body (request fault).
  - "no_quota_headers": the next counted call's reply has no modelscope-ratelimit-* headers.
  The "429" fault on a counted call of a working token carries headers that still show calls
  left (a burst limit); the `ms-test-quota` token's 429 shows 0 left (the day's quota).
"""

from .app import create_app
from .server import Simulator
from .state import (
    BEHAVIORS,
    FAULTS,
    SCOPES,
    TEST_TOKENS,
    LoggedRequest,
    SimConfig,
    SimState,
)

__all__ = [
    "BEHAVIORS",
    "FAULTS",
    "SCOPES",
    "TEST_TOKENS",
    "LoggedRequest",
    "SimConfig",
    "SimState",
    "Simulator",
    "create_app",
]
