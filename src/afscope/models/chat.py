"""Chat formatting: the model's own template, or an explicit one for models that lack it.

Base models such as ``gemma-3-270m`` have no chat template; instead of failing, afscope renders
messages with :data:`PLAIN_TEMPLATE` (or a template the user passes) so prompts stay explicit and
reproducible.
"""

from __future__ import annotations

from typing import Any

PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n\n"
    "{% else %}Assistant: {{ m['content'] }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def render_chat(tokenizer: Any, messages: list[dict[str, str]], *,
                add_generation_prompt: bool = True, template: str | None = None) -> str:
    """Render ``messages`` to the prompt string the model reads.

    ``template`` overrides the tokenizer's; without either, :data:`PLAIN_TEMPLATE` is used.
    """
    chosen = template or getattr(tokenizer, "chat_template", None) or PLAIN_TEMPLATE
    return tokenizer.apply_chat_template(messages, tokenize=False, chat_template=chosen,
                                         add_generation_prompt=add_generation_prompt)
