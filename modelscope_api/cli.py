"""The command line: `python -m modelscope_api chat|image|check|models …`.

Token and base URL come from the environment (MODELSCOPE_ACCESS_TOKEN, MODELSCOPE_BASE_URL).
Answers and saved paths go to stdout; progress, thinking and errors go to stderr.
Exit codes: 0 ok, 1 the server or the network said no, 2 bad input (nothing was sent),
130 interrupted. Expected errors print their plain message and a hint, never a traceback,
never the token.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import catalog, protocols
from .config import BASE_URL_ENV_VAR, SNIPPET_TOKEN_ENV_VAR, Settings, Site, fingerprint, redact, site_for
from .errors import TOKEN_PAGE, EmptyAnswerError, MissingTokenError, ModelScopeError, ValidationError

EXIT_OK = 0
EXIT_API = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Exit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------- parsing


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelscope_api",
        description="ModelScope API-Inference from the command line. "
        f"The token is read from {SNIPPET_TOKEN_ENV_VAR}; the server from {BASE_URL_ENV_VAR} "
        "(default: the real service).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = sub.add_parser("chat", help="stream a chat answer (reasoning goes to stderr)")
    chat.add_argument("prompt", metavar="PROMPT")
    chat.add_argument("--model", help=f"default {catalog.DEFAULT_CHAT_MODEL} "
                      f"({catalog.DEFAULT_VISION_MODEL} with --image-url)")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--image-url", metavar="URL|PATH", help="an image to ask about")
    chat.add_argument("--thinking", action=argparse.BooleanOptionalAction, default=None,
                      help="switch thinking on/off for models that take the switch (Qwen3)")
    chat.add_argument("--max-tokens", type=int, metavar="N")
    chat.add_argument("--temperature", type=float, metavar="F")
    chat.add_argument("--top-p", type=float, metavar="F")
    chat.add_argument("--protocol", choices=protocols.PROTOCOLS, default=protocols.OPENAI,
                      help="openai (default): POST /v1/chat/completions; anthropic: the "
                      "Anthropic-compatible endpoint (beta), POST /v1/messages, text only, no thinking")

    image = sub.add_parser("image", help="generate an image and save it (path on stdout)")
    image.add_argument("prompt", metavar="PROMPT")
    image.add_argument("--model", help=f"default {catalog.DEFAULT_IMAGE_MODEL} "
                       f"({catalog.EDIT_MODELS[0]} with --image-url)")
    image.add_argument("--size", metavar="WxH", help='e.g. "1024x1024"')
    image.add_argument("--seed", type=int, metavar="N")
    image.add_argument("--steps", type=int, metavar="N")
    image.add_argument("--guidance", type=float, metavar="F")
    image.add_argument("--negative-prompt", metavar="S")
    image.add_argument("--lora", action="append", default=[], metavar="ID[:WEIGHT]",
                       help="a LoRA repo id, optionally with a weight; repeat for several")
    image.add_argument("--image-url", action="append", default=[], metavar="URL|PATH",
                       help="an image to edit (URL or local file); repeat for several")
    image.add_argument("--out", default="outputs", metavar="DIR", help="default: outputs")
    image.add_argument("--timeout", type=_positive_float, default=300.0, metavar="S",
                       help="give up waiting after S seconds (default 300)")

    check = sub.add_parser("check", help="check the token with a real 1-token call; show quota")
    check.add_argument("--model", default=catalog.DEFAULT_CHAT_MODEL)

    models = sub.add_parser("models", help="list the known models by kind")
    models.add_argument("--kind", choices=("chat", "vision", "image", "edit"))
    models.add_argument("--live", action="store_true",
                        help="add what the service lists now (GET /v1/models) to the curated lists")
    return parser


def parse_lora(text: str) -> tuple[str, float | None]:
    """"owner/name:0.6" → ("owner/name", 0.6); "owner/name" → ("owner/name", None)."""
    text = text.strip()
    repo, sep, weight = text.rpartition(":")
    if sep and repo:
        try:
            return repo.strip(), float(weight)
        except ValueError:
            raise ValidationError("--lora", text, "ID or ID:WEIGHT, e.g. owner/name:0.6") from None
    return text, None


def _image_source(value: str, err: TextIO | None = None) -> str:
    """URLs and data: URLs pass through; a local path becomes a data: URL, shrunk to fit the
    service when it is bigger (said on `err`)."""
    from . import wire
    from .chat import is_http_url, load_picture

    text = value.strip()
    if is_http_url(text) or text.startswith("data:"):
        return text
    if "://" in text:
        raise ValidationError("--image-url", text, "an http(s) URL or a local image file")
    picture = load_picture(text)
    if picture.shrunk and err is not None:
        name = Path(text).name
        (w0, h0), (w, h) = picture.original_size, picture.size
        if (w0, h0) != (w, h):
            _say(err, f"shrunk {name} from {w0}×{h0} to {w}×{h} "
                 f"(the service's limit is {wire.PICTURE_MAX_SIDE} px a side)")
        else:
            _say(err, f"compressed {name} from {picture.original_bytes / 1e6:.1f} MB "
                 f"to {len(picture.data) / 1e6:.1f} MB before sending it")
    return picture.data_url


# --------------------------------------------------------------------------- commands


def _say(stream: TextIO, text: str = "", end: str = "\n") -> None:
    stream.write(text + end)
    stream.flush()


def cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .chat import ChatDone, ChatRequest, ContentDelta, ReasoningDelta, vision_message

    if args.protocol == protocols.ANTHROPIC:
        # Said before anything is sent: the Anthropic path takes neither a picture nor the switch.
        if args.image_url:
            raise ValidationError("--image-url", args.image_url, "--protocol openai",
                                  "--image-url works with --protocol openai only")
        if args.thinking:
            raise ValidationError("--thinking", True, "--protocol openai",
                                  "--thinking works with --protocol openai only: the "
                                  "Anthropic-compatible endpoint has no thinking switch")
    if args.image_url:
        message = vision_message(args.prompt, _image_source(args.image_url, err))
        model = args.model or catalog.DEFAULT_VISION_MODEL
    else:
        if not args.prompt.strip():
            raise ValidationError("PROMPT", args.prompt, "a non-empty question")
        message = {"role": "user", "content": args.prompt}
        model = args.model or catalog.DEFAULT_CHAT_MODEL
    req = ChatRequest(
        model=model, messages=[message], system_prompt=args.system,
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
        enable_thinking=args.thinking if args.protocol == protocols.OPENAI else None,
    )
    protocols.request_kwargs(req, args.protocol)  # validates as that protocol's client sends it
    client = protocols.chat_client(args.protocol)
    _need_token(client.settings)
    thinking = False
    wrote = False
    events = client.stream(req)
    try:
        for event in events:
            if isinstance(event, ReasoningDelta):
                if not thinking:
                    err.write("[thinking] ")
                    thinking = True
                _say(err, event.text, end="")
            elif isinstance(event, ContentDelta):
                if thinking:
                    _say(err, "\n[/thinking]")
                    thinking = False
                _say(out, event.text, end="")
                wrote = True
            elif isinstance(event, ChatDone):
                if thinking:
                    _say(err, "\n[/thinking]")
                _say(out)
                if event.finish_reason == "length":
                    _say(err, "(the answer stopped at --max-tokens)")
    except BaseException:
        if thinking:
            _say(err)
        if wrote:
            _say(out)  # end the partial line before the error message
        raise
    finally:
        events.close()
    return EXIT_OK


def build_image_request(args: argparse.Namespace, err: TextIO | None = None):
    from .images import ImageRequest, parse_size

    width = height = None
    if args.size:
        width, height = parse_size(args.size)
    loras: Any = [parse_lora(x) for x in args.lora if x.strip()]
    if len(loras) == 1 and loras[0][1] is None:
        loras = loras[0][0]
    urls = [_image_source(u, err) for u in args.image_url if u.strip()]
    model = args.model or (catalog.EDIT_MODELS[0] if urls else catalog.DEFAULT_IMAGE_MODEL)
    req = ImageRequest(
        model=model, prompt=args.prompt, negative_prompt=args.negative_prompt,
        width=width, height=height, seed=args.seed, steps=args.steps, guidance=args.guidance,
        loras=loras or None, image_url=urls or None,
    )
    req.validate()
    return req


def cmd_image(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import wire
    from .images import ImageClient, StatusUpdate
    from .storage import save_result

    req = build_image_request(args, err)
    client = ImageClient(timeout=args.timeout)
    _need_token(client.settings)
    last: dict[str, Any] = {"status": None, "task_id": None}

    def on_status(update: StatusUpdate) -> None:
        last["task_id"] = update.task_id
        if update.status == wire.STATUS_SUBMITTED:
            _say(err, f"task_id: {update.task_id}  (model {req.model})")
        elif update.status != last["status"]:
            _say(err, f"{update.status:<10} {update.elapsed:6.1f} s  (poll {update.polls})")
        last["status"] = update.status

    try:
        result = client.generate(req, on_status=on_status, timeout=args.timeout)
    except KeyboardInterrupt:
        if last["task_id"]:
            _say(err, f"stopped waiting; task {last['task_id']} may still finish on the server")
        raise
    saved = save_result(result, args.out)
    seed = f", seed {result.seed}" if result.seed is not None else ""
    _say(err, f"done in {result.elapsed:.1f} s ({result.polls} polls{seed})")
    for item in saved:
        _say(out, str(item.path))
    return EXIT_OK


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .chat import ChatClient

    client = ChatClient()
    _need_token(client.settings)
    try:
        quota = client.check_token(args.model).quota
        _say(out, f"token OK ({fingerprint(client.settings.token)}) at {client.settings.base_url}")
    except EmptyAnswerError as exc:  # a 200 that carried nothing: the token was accepted
        quota = exc.quota
        _say(out, f"token OK ({fingerprint(client.settings.token)}) at {client.settings.base_url}, "
             f"but {args.model} returned no answer this time")
    if quota is None:
        _say(out, "quota: unknown (the reply carried no modelscope-ratelimit-* headers)")
    else:
        _say(out, f"requests left today: {_of(quota.requests_remaining, quota.requests_limit)}")
        _say(out, f"left for {args.model}: "
             f"{_of(quota.model_requests_remaining, quota.model_requests_limit)}")
    return EXIT_OK


def _of(remaining: int | None, limit: int | None) -> str:
    return f"{'?' if remaining is None else remaining} of {'?' if limit is None else limit}"


def cmd_models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    kinds = {
        "chat": list(catalog.CHAT_MODELS), "vision": list(catalog.VISION_MODELS),
        "image": list(catalog.IMAGE_MODELS), "edit": list(catalog.EDIT_MODELS),
    }
    if args.live:
        from .models import fetch_model_ids

        settings = Settings.resolve()
        for model in fetch_model_ids(settings.base_url, settings.token):
            kind = catalog.kind_of(model)
            if kind in kinds and model not in kinds[kind]:
                kinds[kind].append(model)
    for kind, names in kinds.items():
        if args.kind and kind != args.kind:
            continue
        if not args.kind:
            _say(out, f"# {kind}")
        for name in names:
            _say(out, name)
    return EXIT_OK


def _need_token(settings: Settings) -> None:
    if not settings.token:
        raise MissingTokenError(
            "No ModelScope token found in the environment.",
            hint=f"Get an access token at {TOKEN_PAGE} and set {SNIPPET_TOKEN_ENV_VAR}=<token>.",
        )


COMMANDS = {"chat": cmd_chat, "image": cmd_image, "check": cmd_check, "models": cmd_models}


# --------------------------------------------------------------------------- entry point


def _report(err: TextIO, exc: ModelScopeError, token: str | None, site: Site | None = None) -> None:
    """The error, its hint (links to `site`: the website of the API host) and request id."""
    lines = [f"error: {exc.message or type(exc).__name__}"]
    if exc.status:
        lines[0] += f" (HTTP {exc.status})"
    partial = getattr(exc, "partial_content", "")
    if partial:
        lines.append(f"(received {len(partial)} characters before the break)")
    if exc.hint:
        lines.append(f"hint: {site.localize(exc.hint) if site else exc.hint}")
    if exc.request_id:
        lines.append(f"request id: {exc.request_id}")
    _say(err, redact("\n".join(lines), token))


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        settings = Settings.resolve()
        token, site = settings.token, site_for(settings.base_url)
    except ValueError as exc:  # a malformed MODELSCOPE_BASE_URL
        _say(err, f"error: {exc}\nhint: fix {BASE_URL_ENV_VAR} or unset it.")
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args, out, err)
    except KeyboardInterrupt:
        _say(err, "interrupted")
        return EXIT_INTERRUPTED
    except (ValidationError, MissingTokenError) as exc:
        _report(err, exc, token, site)
        return EXIT_USAGE
    except ModelScopeError as exc:
        _report(err, exc, token, site)
        return EXIT_API
    except BrokenPipeError:  # e.g. `… | head -1`
        return EXIT_OK
    except OSError as exc:  # e.g. the output directory is not writable
        _say(err, redact(f"error: {exc}", token))
        return EXIT_API


__all__ = ["build_parser", "main", "parse_lora"]
