"""The web copy of an issue: its frozen HTML with the per-recipient placeholders made neutral.

The page is the same for everyone who has the link, so it must show nobody's name or address
and carry no working unsubscribe link; those point at a page explaining where to find one.
"""

from __future__ import annotations

import re

from digest import placeholders

# "Hello [[name]]," -> "Hello,"; "Hola, [[name]]:" -> "Hola:" (the greeting's own punctuation).
_NAME = re.compile(r",?\s*" + re.escape(placeholders.NAME))
# The paragraph that names the address ("You receive this email at ... because ...") only
# makes sense in someone's inbox: the web copy drops it whole rather than leave a hole.
_EMAIL_PARAGRAPH = re.compile(
    r"<p\b[^>]*>(?:(?!</p>).)*?" + re.escape(placeholders.EMAIL) + r".*?</p>", re.DOTALL
)


# Whatever per-recipient value render learns to leave next: nobody's, on the web.
_ANY_PLACEHOLDER = re.compile(r"\[\[digest:[a-z_]+\]\]")


def web_copy(html: str, *, links_url: str, view_url: str) -> str:
    html = _NAME.sub("", html)
    html = _EMAIL_PARAGRAPH.sub("", html)
    links = {
        placeholders.UNSUBSCRIBE_URL: links_url,
        placeholders.PREFERENCES_URL: links_url,
        placeholders.VIEW_ONLINE_URL: view_url,
    }
    for placeholder, value in links.items():
        html = html.replace(placeholder, value)
    # GREETING_NAME ("Hello[[...]],") and the rest become nothing.
    return _ANY_PLACEHOLDER.sub("", html)
