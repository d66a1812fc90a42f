"""The secret keys that sign the links in every message, and the refusal of unsafe ones.

Whoever holds a signing key can write any subscriber's unsubscribe, preferences or confirm
link. So outside development mode (DIGEST_DEV_MODE=1) nothing signs or reads a link with no key
or with one that was ever published (`config.KNOWN_SECRETS`): `InsecureKey` says why, and the
CLI prints it as one line (exit 2) before it sends or serves.

Rotation: DIGEST_SECRET_KEYS keeps earlier keys, so links in mail sent before a rotation still
work; the newest key signs.

`digest demo` needs no set-up: with no key configured it makes a random one once and keeps it
beside its SQLite database (mode 0600), where every later run on that database finds it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import NewType
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from digest.config import DEV_SECRET, KNOWN_SECRETS, Settings
from digest.errors import DigestError

KEPT_KEY_SUFFIX = ".key"
_HOW = (
    "set DIGEST_SECRET_KEY to a long random value "
    "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), "
    "or DIGEST_DEV_MODE=1 on a development machine"
)
MISSING = f"DIGEST_SECRET_KEY is not set: every link in mail would be signed with no secret; {_HOW}"
KNOWN = (
    "DIGEST_SECRET_KEY (or one of DIGEST_SECRET_KEYS) is a published example key, so anyone "
    f"could forge any subscriber's links; {_HOW}"
)


class InsecureKey(DigestError):
    """No signing key, or a known one, outside development mode."""


# Keys that passed `checked` (oldest first, the last signs): the only kind `digest.tokens`
# signs or verifies with, so no path can sign with a key nobody checked.
LinkKeys = NewType("LinkKeys", tuple[str, ...])


def is_known(key: str) -> bool:
    return key.strip().lower() in KNOWN_SECRETS


def checked(keys: Sequence[str], *, dev_mode: bool) -> LinkKeys:
    """`keys` as they are, unless one is empty or published and this is not development mode."""
    keys = tuple(keys)
    if dev_mode:
        return LinkKeys(keys)
    if not keys or not all(k.strip() for k in keys):
        raise InsecureKey(MISSING)
    if any(is_known(k) for k in keys):
        raise InsecureKey(KNOWN)
    return LinkKeys(keys)


def kept_key_path(database_url: str) -> Path | None:
    """Where the demo keeps its key: beside the SQLite database file (None: not SQLite)."""
    url = make_url(database_url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    return Path(database + KEPT_KEY_SUFFIX)


def read_kept_key(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None


def signing_keys(settings: Settings) -> LinkKeys:
    """The keys that verify links, oldest first; the last one signs. Raises InsecureKey."""
    keys = settings.keys
    if not keys:
        path = kept_key_path(settings.database_url)
        kept = read_kept_key(path) if path else None
        keys = (kept,) if kept else ()
    if not keys and settings.dev_mode:
        return LinkKeys((DEV_SECRET,))
    return checked(keys, dev_mode=settings.dev_mode)


def keep_random_key(settings: Settings) -> str:
    """The demo's key: the one kept beside its SQLite database, made once if there is none.

    Written under a temporary name and linked into place, so two demos starting at once
    agree on one key and neither ever reads a half-written file."""
    path = kept_key_path(settings.database_url)
    if path is None:
        raise InsecureKey(f"the demo keeps a key only beside a SQLite database; {_HOW}")
    if kept := read_kept_key(path):
        return kept
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        with contextlib.suppress(FileExistsError):  # another run made it first: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    kept = read_kept_key(path)
    if kept is None:
        raise InsecureKey(f"{path} is empty; remove it and run the demo again")
    return kept


def public_url_warning(settings: Settings) -> str | None:
    """Why DIGEST_PUBLIC_URL is unfit for real mail, or None."""
    if settings.dev_mode or urlsplit(settings.public_url).scheme.lower() == "https":
        return None
    return (
        f"DIGEST_PUBLIC_URL ({settings.public_url}) is not https: the links in mail travel in "
        "clear and mail providers ignore one-click unsubscribe (RFC 8058 needs https)"
    )
