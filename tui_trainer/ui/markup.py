"""User text inside Textual markup: file paths, run names, engine messages, typed values.

Textual's markup reads any `[` as a tag, and a trailing backslash escapes the tag after it,
so user text is never pasted into markup: it fills `$name` slots, or is shown as plain text.
"""

from textual.content import Content


def markup(template: str, **text: str) -> Content:
    """`template`'s markup, its `$name` slots filled with `text` shown exactly as it is."""
    return Content.from_markup(template, **text)


def plain(text: str) -> Content:
    return Content(text)


def escape(text: str) -> str:
    r"""Escape every `[` of text that goes into markup not followed by a tag (help's fixed key names)."""
    return text.replace("[", r"\[")
