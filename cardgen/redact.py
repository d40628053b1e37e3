"""Keep secrets out of everything cardgen prints or writes.

Tokens reach cardgen through the environment (HF_TOKEN, OPENAI_API_KEY, ...) and through
library exceptions that may echo request headers. Every error message and log line goes through
`redact` before it is shown.
"""

from __future__ import annotations

import os
import re

#: Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_API_TOKEN",
    "OPENAI_API_KEY", "CARDGEN_API_KEY", "ANTHROPIC_API_KEY", "API_KEY",
)  # fmt: skip
_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{16,}\b"),  # Hugging Face user access tokens
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}\b"),  # OpenAI-style keys
    re.compile(r"(?i)(authorization:\s*|bearer\s+)[^\s'\"]+"),
)
MASK = "***"


def redact(text: str) -> str:
    """``text`` with every known secret value and token-shaped string replaced by ***."""
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    for pat in _PATTERNS:
        text = pat.sub(lambda m: m.group(1) + MASK, text) if pat.groups else pat.sub(MASK, text)
    return text
