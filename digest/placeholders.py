"""Per-recipient placeholders that render leaves in the frozen issue and delivery fills in.

They are plain ASCII that survives HTML escaping, MJML and quoted-printable unchanged, so the
issue is rendered once and each copy is made by substitution.
"""

from __future__ import annotations

NAME = "[[digest:name]]"
# The name with a leading space, or nothing: "Hello[[digest:greeting_name]]," reads
# "Hello Ada," or "Hello," for a subscriber without a name.
GREETING_NAME = "[[digest:greeting_name]]"
EMAIL = "[[digest:email]]"
UNSUBSCRIBE_URL = "[[digest:unsubscribe_url]]"
PREFERENCES_URL = "[[digest:preferences_url]]"
VIEW_ONLINE_URL = "[[digest:view_online_url]]"

ALL = (NAME, GREETING_NAME, EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL, VIEW_ONLINE_URL)
# Every copy must carry these: the links the law and RFC 8058 ask for, and who it went to.
REQUIRED = (EMAIL, UNSUBSCRIBE_URL, PREFERENCES_URL, VIEW_ONLINE_URL)
