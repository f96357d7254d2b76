"""Chat-message checks shared by every backend (no heavy imports).

``prepare_chat(chat, system_prompt)`` validates a chat (non-empty list of ``{"role", "content"}``
string messages, roles system/user/assistant) and returns a copy that starts with a system message:
``system_prompt`` is prepended when the chat has none, so a model's template never injects its own
default system prompt (SmolLM2's does).
"""
from __future__ import annotations

from .base import Chat

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
ROLES = ("system", "user", "assistant")


def validate_chat(chat: Chat) -> None:
    """Raise ``ValueError`` unless ``chat`` is a non-empty list of {role, content} string messages."""
    if not isinstance(chat, (list, tuple)) or not chat:
        raise ValueError(f"a chat must be a non-empty list of messages, got {type(chat).__name__}")
    for msg in chat:
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), str):
            raise ValueError(f"each message must be a dict with a string 'content', got {msg!r:.80}")
        if msg.get("role") not in ROLES:
            raise ValueError(f"message role must be one of {ROLES}, got {msg.get('role')!r}")


def prepare_chat(chat: Chat, system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> Chat:
    """A validated copy of ``chat`` that starts with a system message."""
    validate_chat(chat)
    messages = [{"role": m["role"], "content": m["content"]} for m in chat]
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages
