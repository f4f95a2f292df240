"""中文 and English for every static string. Each tab module keeps its own STRINGS table
({"en": {...}, "zh": {...}}, keys prefixed by the tab); this module merges them.

Labels use `gr.I18n` keys (translated in the browser from its locale / the settings page);
messages built at run time use `text(key, lang)` with the language from `explain.lang_of`.
"""

from __future__ import annotations

import gradio as gr

COMMON = {
    "en": {
        "app.title": "ModelScope API-Inference Studio",
        "app.subtitle": "Chat, ask about images and make pictures with ModelScope's free API — and see the Python behind every request.",
        "app.offline_banner": "Offline mode: answers and images come from the built-in simulator, not from ModelScope.",
        "common.show_code": "Show code",
        "common.code_label": "Python for the last request (token read from the environment)",
        "common.model": "Model",
        "common.copy_hint": "Copy this into a file and run it with MODELSCOPE_ACCESS_TOKEN set.",
    },
    "zh": {
        "app.title": "ModelScope API-Inference 工作室",
        "app.subtitle": "用 ModelScope 免费 API 聊天、看图问答、生成图片——并查看每个请求背后的 Python 代码。",
        "app.offline_banner": "离线模式：回答和图片来自内置模拟器，而不是 ModelScope。",
        "common.show_code": "查看代码",
        "common.code_label": "上一次请求的 Python 代码（令牌从环境变量读取）",
        "common.model": "模型",
        "common.copy_hint": "复制到文件中，设置 MODELSCOPE_ACCESS_TOKEN 后运行。",
    },
}


def merge(*tables: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {"en": {}, "zh": {}}
    for table in (COMMON, *tables):
        for lang, strings in table.items():
            clash = set(merged.setdefault(lang, {})) & set(strings)
            if clash:
                raise ValueError(f"duplicate i18n keys: {sorted(clash)}")
            merged[lang].update(strings)
    missing = set(merged["en"]) ^ set(merged["zh"])
    if missing:
        raise ValueError(f"i18n keys missing in one language: {sorted(missing)}")
    return merged


_merged: dict[str, dict[str, str]] = merge()


def make_i18n(*tables: dict[str, dict[str, str]]) -> gr.I18n:
    global _merged
    _merged = merge(*tables)
    return gr.I18n(**_merged)


def text(key: str, lang: str = "en", **fmt) -> str:
    """A run-time string in the user's language (falls back to English, then the key)."""
    table = _merged.get(lang) or _merged["en"]
    value = table.get(key) or _merged["en"].get(key) or key
    return value.format(**fmt) if fmt else value
