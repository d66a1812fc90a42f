"""Errors raised while rendering an issue."""

from __future__ import annotations


class RenderError(Exception):
    """The issue could not be rendered: a template, MJML or placeholder problem."""


class MjmlError(RenderError):
    """The MJML produced by the templates is not valid MJML."""
