"""View models -> Jinja2 -> MJML -> HTML once per issue, and the plain-text part."""
