"""A stranger's documents cannot make the collector read the operator's disk or network.

The hostile corpus (tests/fixtures/hostile/collector/, see its README) is served by an "origin"
server on 127.0.0.1, the one private address these tests allow (DIGEST_ALLOW_PRIVATE_FETCH is
off; DIGEST_ALLOW_PRIVATE_FETCH_TO names the origin's port). What the documents reach for is a
canary: local files in tmp_path and a "secret" server on another 127.0.0.1 port, all holding a
unique token. The corpus goes through collect -> compose -> approve -> deliver into the Maildir
on both stores; the token must appear in no stored item and no delivered byte, and the secret
server must see no request at all.
"""

from __future__ import annotations

import asyncio
import html
import json
import shutil
import ssl
import string
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

import httpx
import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import Settings, get_settings, reset_settings
from digest.db import session_factory
from digest.delivery.send import send_issue_inline
from digest.delivery.transport_factory import open_transport
from digest.issues.compose import compose_issue
from digest.models import Issue, Item, Source
from digest.pipeline import approve_issue, start_sending
from digest.sources.addresses import AddressPolicy
from digest.sources.collect import collect_due
from digest.sources.errors import FetchError, FetchRefused
from digest.sources.fetch import fetch, make_client
from digest.sources.reader import read_once
from digest.sources.transport import GuardedTransport
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.service import add_subscriber
from tests.fixtures.sources.server import Page, SourceServer, serving
from tests.helpers import outbox_messages
from tests.integration.test_sources_collect import sources_cli
from tests.unit.test_sources_addresses import loose_spelling

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "hostile" / "collector"
LISTING = {"item": "li.n", "title": "h3 a", "summary": "p", "next": "a.next"}


def corpus_lines(name: str) -> list[str]:
    text = (CORPUS / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@dataclass
class Scene:
    token: str
    canary_dir: Path
    origin: SourceServer
    secret: SourceServer

    def fill(self, text: str, **extra: str) -> str:
        values = {
            "TOKEN": self.token,
            "CANARY_DIR": str(self.canary_dir),
            "SECRET_PORT": str(self.secret.port),
        }
        return string.Template(text).substitute(values | extra)

    def corpus(self, name: str, **extra: str) -> str:
        return self.fill((CORPUS / name).read_text(encoding="utf-8"), **extra)

    def file_base_discovery(self, case: str) -> str:
        """A site page announcing "canary.xml" under <base href="file:///...canary folder/">."""
        base = f'<base href="{html.escape(self.canary_dir.as_uri())}/">'
        return self.corpus("feed_discovery.html", CASE=case, FEED="canary.xml", BASE=base)


def private_fetch_off(monkeypatch: pytest.MonkeyPatch, *allowed: str) -> None:
    """The setting a production collector runs with (conftest turns it on for other tests)."""
    monkeypatch.delenv("DIGEST_ALLOW_PRIVATE_FETCH", raising=False)
    monkeypatch.setenv("DIGEST_ALLOW_PRIVATE_FETCH_TO", json.dumps(list(allowed)))
    reset_settings()


@pytest.fixture
def scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    canary_dir = tmp_path / "secrets"
    canary_dir.mkdir()
    with serving() as origin, serving() as secret:
        found = Scene(f"CANARY{uuid.uuid4().hex}", canary_dir, origin, secret)
        for name in ("canary.html", "canary.xml"):
            (canary_dir / name).write_text(found.corpus(name), encoding="utf-8")
        secret.add("/canary", found.corpus("canary.html"))
        secret.add("/canary.xml", Page(found.corpus("canary.xml").encode(), "application/rss+xml"))
        private_fetch_off(monkeypatch, f"127.0.0.1:{origin.port}")
        yield found


@dataclass
class Case:
    name: str
    url: str
    kind: str
    selectors: dict[str, object] = field(default_factory=dict)
    items: int = 0  # benign items the case's own first page holds
    refused: bool = False  # its error (or note, for a later page) must say "refused:"


def hostile_cases(scene: Scene) -> list[Case]:
    """One source per corpus entry, each a URL on the origin (or the operator's local file)."""
    origin, cases = scene.origin, []
    for n, href in enumerate(corpus_lines("next_links.txt")):
        name = f"next{n}"
        target = scene.fill(href)
        body = scene.corpus("listing_next.html", CASE=name, NEXT=html.escape(target))
        # An http(s) link is requested, so it must be refused in words; other schemes are
        # not links at all (dropped when the page is read).
        aimed = target.startswith("http")
        cases.append(Case(name, origin.add(f"/{name}", body), "html", LISTING, 2, aimed))
    body = scene.corpus("listing_base_file.html", CASE="basefile")
    cases.append(Case("basefile", origin.add("/basefile", body), "html", LISTING, 2))
    for n, href in enumerate(corpus_lines("discovery_links.txt")):
        name = f"feed{n}"
        target = scene.fill(href)
        body = scene.corpus("feed_discovery.html", CASE=name, FEED=html.escape(target), BASE="")
        aimed = target.startswith("http")
        cases.append(Case(name, origin.add(f"/{name}", body), "auto", {}, 3, aimed))
    body = scene.file_base_discovery("feedbase")
    cases.append(Case("feedbase", origin.add("/feedbase", body), "auto", {}, 3))
    for n, location in enumerate(corpus_lines("redirects.txt")):
        name = f"redirect{n}"
        page = Page(status=302, location=scene.fill(location))
        cases.append(Case(name, origin.add(f"/{name}", page), "html", LISTING, 0, True))
    # Hop by hop: a harmless first hop on the origin, the hostile one second.
    origin.add("/chain1", Page(status=301, location="/chain2"))
    origin.add("/chain2", Page(status=307, location=f"http://0x7f.1:{scene.secret.port}/canary"))
    cases.append(Case("chain", origin.url("/chain1"), "html", LISTING, 0, True))
    # A next page that redirects: the first page stands, the second is refused.
    origin.add("/next-redirect", Page(status=302, location=scene.secret.url("/canary")))
    body = scene.corpus("listing_next.html", CASE="nextredirect", NEXT="/next-redirect")
    cases.append(Case("nextredirect", origin.add("/nextredirect", body), "html", LISTING, 2, True))
    # The operator's own local page: read; its relative next link (a file beside it) is not.
    local = scene.canary_dir / "local.html"
    local.write_text(scene.corpus("local_page.html", CASE="local"), encoding="utf-8")
    cases.append(Case("local", local.as_uri(), "html", LISTING, 2, True))
    return cases


def delivered_text(outbox: Path) -> tuple[bytes, str]:
    """Every byte in the outbox, and every message's headers and decoded parts as text."""
    raw = b"".join(p.read_bytes() for p in sorted(outbox.rglob("*")) if p.is_file())
    decoded = []
    for message in outbox_messages(outbox):
        decoded.append(str(message["Subject"]))
        decoded.extend(
            str(part.get_content()) for part in message.walk() if not part.is_multipart()
        )
    return raw, "\n".join(decoded)


def test_hostile_corpus_end_to_end_leaks_nothing(
    db_url: str, session: Session, scene: Scene, tmp_path: Path
) -> None:
    lst = create_list(session, slug="hostile", name="Hostile corpus", max_items=500)
    for n in range(2):
        add_subscriber(session, lst.id, f"reader{n}@example.org", f"Reader {n}")
    cases = hostile_cases(scene)
    ids: dict[str, int] = {}
    for case in cases:
        source = Source(name=case.name, url=case.url, kind=case.kind, selectors=case.selectors)
        session.add(source)
        session.flush()
        link_source(session, lst.id, source.id)
        ids[case.name] = source.id
    session.commit()

    results = {
        r.source_id: r for r in collect_due(session_factory(db_url), settings=get_settings())
    }
    issue = compose_issue(session, lst.id)
    assert issue is not None
    issue_id = issue.id
    session.commit()
    approve_issue(session, issue_id, get_settings())
    session.commit()
    assert start_sending(session, issue_id).planned == 2
    session.commit()
    with open_transport(get_settings()) as transport:
        sent = send_issue_inline(session_factory(db_url), issue_id, transport, get_settings())
    assert sent.sent == 2

    # Nothing reached the secret server, whatever the spelling, scheme or hop.
    assert scene.secret.hits == {}
    session.expire_all()
    sources = {s.name: s for s in session.scalars(select(Source))}
    items = list(session.scalars(select(Item)))
    for item in items:
        stored = [item.title, item.url, item.summary_html, item.summary_text, item.image_url]
        assert scene.token not in repr(stored), item.title
        for url in (item.url, item.image_url):
            assert url is None or url.startswith(("http://", "https://")), url
    for source in sources.values():
        assert scene.token not in (source.last_error or "")
        assert source.url.startswith("http") or source.name == "local"
    rendered = session.get(Issue, issue_id)
    assert rendered is not None and scene.token not in (rendered.html or "") + (rendered.text or "")
    raw, decoded = delivered_text(tmp_path / "outbox")
    assert scene.token.encode() not in raw and scene.token not in decoded

    # Each case kept its own benign items and says in words what was refused.
    for case in cases:
        source, result = sources[case.name], results[ids[case.name]]
        own = [i for i in items if i.source_id == source.id]
        assert len(own) == case.items, (case.name, [i.title for i in own], source.last_error)
        assert all(
            i.title.endswith(f" of {case.name}") or f" of {case.name} " in i.title for i in own
        )
        if case.refused:
            assert "refused: " in (source.last_error or ""), (case.name, source.last_error)
        if case.items == 0:
            assert result.error is not None and source.consecutive_failures == 1
        else:
            assert result.error is None and source.consecutive_failures == 0
            assert all(html.escape(i.title) in decoded for i in own), case.name
    assert "DIGEST_ALLOW_PRIVATE_FETCH=1" in (sources["redirect3"].last_error or "")
    assert "not an http(s) URL" in (sources["local"].last_error or "")


def test_cli_try_and_add_refuse_in_one_line(
    db_url: str, session: Session, scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = scene.secret.port
    scene.origin.add("/to-metadata", Page(status=302, location="http://169.254.169.254/"))
    feed_page = scene.file_base_discovery("cli")
    page = scene.origin.add("/announces-a-file", feed_page)
    for args in (
        ["try", f"http://127.0.0.1:{secret}/canary"],
        ["try", f"http://localhost:{secret}/canary.xml"],
        ["try", f"http://2130706433:{secret}/canary"],
        ["try", "http://169.254.169.254/latest/meta-data/"],
        ["try", "--kind", "feed", scene.origin.url("/to-metadata")],
        ["add", f"http://[::ffff:127.0.0.1]:{secret}/canary", "--kind", "html"],
        ["add", f"http://example.org@127.0.0.1:{secret}/canary.xml"],
        ["add", "gopher://127.0.0.1/"],
    ):
        code, out, err = sources_cli(capsys, *args)
        assert code == 2, (args, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "refused" in err or "unsupported address" in err, err
        assert "Traceback" not in out + err and scene.token not in out + err
    assert session.scalar(select(Source)) is None
    # A page announcing a feed on the disk is added as the page, never as the file.
    code, _out, err = sources_cli(capsys, "add", page)
    assert code == 0, err
    stored = session.scalar(select(Source))
    assert stored is not None and stored.url == page and stored.kind == "html"
    assert scene.secret.hits == {}


def test_the_setting_lets_the_operator_reach_private_addresses(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = scene.secret.url("/canary.xml")
    with pytest.raises(FetchRefused, match=r"refused: 127\.0\.0\.1 is a loopback address; set"):
        read_once(url, settings=get_settings())
    monkeypatch.setenv("DIGEST_ALLOW_PRIVATE_FETCH", "1")
    reset_settings()
    assert read_once(
        url, settings=get_settings()
    ).items  # the refusal above was the policy, not a broken server
    monkeypatch.delenv("DIGEST_ALLOW_PRIVATE_FETCH")
    allowed = [f"127.0.0.1:{scene.origin.port}", f"127.0.0.1:{scene.secret.port}"]
    private_fetch_off(monkeypatch, *allowed)
    assert read_once(url, settings=get_settings()).items  # or only that address and port
    assert Settings().allow_private_fetch is False


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spelling=loose_spelling(IPv4Address("127.0.0.1")), trailing_dot=st.booleans())
def test_any_spelling_of_loopback_is_refused_before_and_at_connect(
    scene: Scene, spelling: str, trailing_dot: bool
) -> None:
    host = spelling + ("." if trailing_dot else "")
    url = f"http://{host}:{scene.secret.port}/canary"
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1"):
        fetch(url, settings=get_settings())
    assert scene.secret.hits == {}

    async def straight_to_the_transport() -> None:
        # Past `web_url`: the network backend judges what the name resolves to.
        async with make_client(get_settings()) as client:
            await client.get(url)

    try:
        httpx.URL(url)
    except httpx.InvalidURL:  # e.g. "0177.0.0.1": httpx itself will not request it
        return
    if not trailing_dot:  # this machine's resolver does not resolve "127.0.0.1." at all
        with pytest.raises(FetchRefused, match="a loopback address") as refused:
            asyncio.run(straight_to_the_transport())
        assert f"refused: {host.lower()} " in str(refused.value)
    assert scene.secret.hits == {}


def test_one_resolution_per_connection_to_the_checked_address(scene: Scene) -> None:
    """DNS rebinding: the name is resolved once and the socket goes to the address judged;
    an answer holding one refused address refuses the name; Host stays the name."""
    calls: list[str] = []
    answers = [["127.0.0.1"], ["127.0.0.1", "169.254.169.254"], ["::ffff:127.0.0.1"]]

    async def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[len(calls) - 1]

    scene.origin.add("/feed.xml", Page(scene.corpus("canary.xml").encode(), "application/rss+xml"))
    url = f"http://news.test:{scene.origin.port}/feed.xml"

    async def get() -> int:
        async with make_client(get_settings(), resolver=resolver) as client:
            return (await client.get(url)).status_code

    assert asyncio.run(get()) == 200
    assert calls == ["news.test"] and scene.origin.requests[-1]["Host"] == url.split("/")[2]
    with pytest.raises(FetchRefused, match=r"news\.test resolves to 169\.254\.169\.254"):
        asyncio.run(get())
    with pytest.raises(FetchRefused, match=r"an IPv6 form of 127\.0\.0\.1"):
        asyncio.run(get())
    assert len(calls) == 3 and scene.origin.hits["/feed.xml"] == 1


def test_tls_keeps_the_host_name_for_sni_and_certificate() -> None:
    """The socket goes to the resolved address; TLS still names (and verifies) the host."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    seen: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: seen.append(name)  # type: ignore[assignment,func-returns-value]
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = SourceServer(tls=server_context).start()
    try:
        server.add("/", Page(b"<html><body>hello</body></html>"))
        policy = AddressPolicy(allow_private=True)
        transport = GuardedTransport(policy=policy, limits=httpx.Limits(), verify=client_context)

        async def get(url: str) -> httpx.Response:
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.get(url)

        response = asyncio.run(get(f"https://localhost:{server.port}/"))
        assert response.status_code == 200 and seen == ["localhost"]
        assert server.requests[-1]["Host"] == f"localhost:{server.port}"
        transport = GuardedTransport(policy=policy, limits=httpx.Limits(), verify=client_context)
        with pytest.raises(httpx.ConnectError, match="certificate"):
            asyncio.run(get(f"https://127.0.0.1:{server.port}/"))  # not the certificate's name
    finally:
        server.stop()


def test_a_refused_page_stops_only_its_source(scene: Scene, tmp_path: Path) -> None:
    """The local page's next link is a file beside it: refused in words, page one stands."""
    local = tmp_path / "saved" / "news.html"
    local.parent.mkdir()
    local.write_text(scene.corpus("local_page.html", CASE="saved"), encoding="utf-8")
    shutil.copy(scene.canary_dir / "canary.html", local.parent / "canary.html")
    result = read_once(str(local), kind="html", selectors=LISTING, settings=get_settings())
    assert [i.title for i in result.items] == [
        "Benign story one of saved",
        "Benign story two of saved",
    ]
    assert len(result.warnings) == 1 and "page 2 not read: refused: file:" in result.warnings[0]
    with pytest.raises(FetchError, match="not an http"):
        fetch(
            local.as_uri(), settings=get_settings()
        )  # a document's link is never a file, only a source's own address
