"""MJML -> HTML with mjml-python (the Rust MRML compiler; no Node.js needed)."""

from __future__ import annotations

from mjml import mjml2html

from digest.render.errors import MjmlError

# No web fonts by default: with an empty map MRML adds no <link> or @import for any font.
NO_FONTS: dict[str, str] = {}


def compile_mjml(source: str, *, fonts: dict[str, str] | None = None) -> str:
    """Compile an MJML document to HTML; MJML that MRML cannot parse raises MjmlError."""
    if not source.lstrip().startswith("<mjml"):
        raise MjmlError("invalid MJML: the document must start with <mjml>")
    try:
        return mjml2html(source, disable_comments=True, fonts=NO_FONTS if fonts is None else fonts)
    except ValueError as exc:
        raise MjmlError(f"invalid MJML: {exc}") from exc
