"""View models -> Jinja2 -> MJML -> HTML once per issue, and the plain-text part."""

from digest.render.errors import MjmlError, RenderError
from digest.render.issue import render_issue, render_mjml_source
from digest.render.view import GroupView, IssueView, ItemView, RenderedIssue

__all__ = [
    "GroupView",
    "IssueView",
    "ItemView",
    "MjmlError",
    "RenderError",
    "RenderedIssue",
    "render_issue",
    "render_mjml_source",
]
