"""Deterministic chat answers: the text, split into "tokens" (a word and its trailing space).

The answer quotes the start of the last user message ('You asked: "..."'), so a test can
check the right question got the right answer; vision answers describe the image(s).
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from . import images

_FILLER = (
    "This is a simulated answer from the local ModelScope simulator.",
    "The real service would run the model you picked on ModelScope's servers.",
    "Here the words are made up, but the timing and the wire format are faithful.",
    "Each word arrives as its own streamed chunk, just like a real model's tokens.",
    "You can change the speed with the tokens per second setting.",
    "Nothing you type leaves this machine while the simulator is in use.",
    "A good answer would now explain the idea step by step.",
    "First, it would restate the question in simpler words.",
    "Then it would give an example that makes the idea concrete.",
    "Finally, it would sum up the main point in one short sentence.",
    "Try asking the same question twice: the answer stays the same.",
    "The quota headers on this response go down by one for every call.",
)
_THOUGHTS = (
    "The user wants a clear and short answer.",
    "I should check what exactly is being asked before answering.",
    "Maybe an example would help here.",
    "Let me make sure the answer stays on topic.",
    "I will keep the explanation simple and friendly.",
    "There may be more than one way to read the question.",
)

_TOKEN_RE = re.compile(r"\S+\s*")


def split_tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def _rng(text: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big"))


def _quote(question: str, limit: int = 60) -> str:
    q = " ".join(question.split())
    return q if len(q) <= limit else q[: limit - 3] + "..."


def _fill(tokens: list[str], pool: tuple[str, ...], rng: random.Random, n: int) -> list[str]:
    order = list(pool)
    rng.shuffle(order)
    i = 0
    while len(tokens) < n:
        sentence = order[i % len(order)]
        tokens.extend(split_tokens(sentence + " "))
        i += 1
    return tokens[:n]


def answer_tokens(
    question: str, max_tokens: int | None = None, image_note: str | None = None
) -> tuple[list[str], str]:
    """(tokens, finish_reason): max_tokens tokens ("length") if given, else 40-80 ("stop")."""
    rng = _rng(question)
    natural = rng.randint(40, 80)
    opening = f'You asked: "{_quote(question)}". '
    if image_note:
        opening += image_note + " "
    tokens = split_tokens(opening)
    if max_tokens is not None:
        return _fill(tokens, _FILLER, rng, max_tokens), "length"
    tokens = _fill(tokens, _FILLER, rng, max(natural, len(tokens)))
    if tokens:
        tokens[-1] = tokens[-1].rstrip()
    return tokens, "stop"


def reasoning_tokens(question: str, budget: int | None = None) -> list[str]:
    rng = _rng("think:" + question)
    n = rng.randint(20, 40)
    if budget is not None:
        n = max(0, min(n, budget))
    tokens = split_tokens(f'Let me think about "{_quote(question, 40)}". ')
    return _fill(tokens, _THOUGHTS, rng, n)


def message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def image_parts(content: Any) -> list[str]:
    """The image URLs in one message's content."""
    urls = []
    if isinstance(content, list):
        for p in content:
            if isinstance(p, dict) and p.get("type") == "image_url":
                iu = p.get("image_url")
                url = iu.get("url") if isinstance(iu, dict) else iu
                urls.append(url if isinstance(url, str) else "")
    return urls


def last_user_message(messages: list) -> dict | None:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return m
    return None


def last_user_images(messages: list) -> list[str]:
    """Image URLs of the most recent user message that has any."""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            urls = image_parts(m.get("content"))
            if urls:
                return urls
    return []


def describe_url(url: str) -> str:
    """One phrase about an image URL (data: URLs are decoded; http(s) ones never fetched)."""
    if url.startswith("data:"):
        data = images.decode_data_url(url)
        info = images.describe_image(data) if data else None
        if info is None:
            return "an image I could not decode"
        fmt, w, h, colour = info
        return f"a {fmt} image of {w}x{h} pixels, mostly {colour}"
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or url
    return f"an image named {name}"


def image_note(urls: list[str]) -> str:
    parts = [describe_url(u) for u in urls]
    if len(parts) == 1:
        return f"I see {parts[0]}."
    return f"I see {len(parts)} images: " + "; ".join(parts) + "."


def count_prompt_tokens(messages: list) -> int:
    total = 0
    for m in messages:
        if isinstance(m, dict):
            total += 4 + len(split_tokens(message_text(m.get("content"))))
            total += 256 * len(image_parts(m.get("content")))
    return total
