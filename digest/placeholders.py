"""Per-recipient placeholders that render leaves in the frozen issue and delivery fills in.

They are plain ASCII that survives HTML escaping, MJML and quoted-printable unchanged, so the
issue is rendered once and each copy is made by substitution.
"""

from __future__ import annotations

NAME = "[[digest:name]]"
EMAIL = "[[digest:email]]"
UNSUBSCRIBE_URL = "[[digest:unsubscribe_url]]"
PREFERENCES_URL = "[[digest:preferences_url]]"
VIEW_ONLINE_URL = "[[digest:view_online_url]]"

ALL = (NAME, EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL, VIEW_ONLINE_URL)
