"""DKIM signing of each copy with dkimpy, when a key is configured (RSA or Ed25519).

The signature covers the fields a receiver and the one-click rule care about, List-Unsubscribe
and List-Unsubscribe-Post included (dkimpy's default set leaves the last out, and Gmail and
Yahoo want both signed). Each copy differs (its unsubscribe link, its address), so each gets
its own signature: the cost is measured by `benchmarks/send.py --dkim`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import dkim

from digest.delivery.errors import DeliveryError
from digest.delivery.message import unstuff
from digest.delivery.recipient import Recipient

SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"Reply-To",
    b"Feedback-ID",
    b"MIME-Version",
    b"Content-Type",
)


class DkimSigner:
    """Signs DATA-ready copies: the signature field goes in front, the rest is untouched."""

    def __init__(self, key: bytes, selector: str, domain: str) -> None:
        self.selector, self.domain = selector.encode(), domain.encode()
        self.key = key.strip()
        if b"PRIVATE KEY" in self.key:
            self.algorithm = b"rsa-sha256"
        else:
            try:
                seed = base64.b64decode(self.key, validate=True)
            except ValueError as exc:
                raise DeliveryError("DKIM key: neither a PEM RSA key nor an Ed25519 key") from exc
            if len(seed) != 32:
                raise DeliveryError("DKIM key: an Ed25519 key is 32 bytes in base64")
            self.algorithm = b"ed25519-sha256"
        self.sign(b"From: x@example.org\r\nSubject: check\r\n\r\nkey check\r\n")  # fail early

    def sign(self, data: bytes) -> bytes:
        """A copy (DATA-ready: CRLF, dot-stuffed) with its DKIM-Signature field in front."""
        field: bytes = dkim.sign(
            unstuff(data),
            self.selector,
            self.domain,
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=self.algorithm,
            include_headers=list(SIGNED_HEADERS),
            linesep=b"\r\n",
        )
        return field + data  # a header field never starts with ".": no stuffing needed

    def wrap(self, render: Callable[[Recipient], bytes]) -> Callable[[Recipient], bytes]:
        return lambda recipient: self.sign(render(recipient))


@lru_cache(maxsize=4)
def _load(path: str, selector: str, domain: str) -> DkimSigner:
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise DeliveryError(f"DKIM key {path}: {exc.strerror}") from exc
    return DkimSigner(key, selector, domain)


def dkim_signer(key_file: Path | None, selector: str | None, domain: str) -> DkimSigner | None:
    """The signer for these settings (loaded once per process), or None without a key."""
    if key_file is None:
        return None
    if not selector:
        raise DeliveryError("DIGEST_DKIM_SELECTOR is needed with DIGEST_DKIM_KEY_FILE")
    return _load(str(key_file), selector, domain)
