"""Text shown inside Textual markup."""


def escape(text: str) -> str:
    r"""Show `text` as it is inside Textual markup.

    Rich's `escape` leaves a `[` that cannot start a Rich tag, such as the `[` key, but
    Textual's parser reads any `[` as a tag: escape every one."""
    return text.replace("[", r"\[")
