"""The preview file of a hostile issue, opened in Chromium: no script runs, nothing leaks.

The corpus (tests/fixtures/hostile/render/) is collected from a server on 127.0.0.1 and
composed; `digest issues preview` writes the draft's HTML and, once approved, the frozen
copy's. Each is opened from disk as an editor would open it, every request beyond the file
refused. The page must raise no dialog and call no watched function on load, nor when every
element gets the events a reader's pointer, keyboard and clicks would send (onmouseover,
onfocus ...), and Chromium's own DOM must hold no script, no event handler and no link to
anything but http(s), mailto or the page itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.config import get_settings
from digest.db import session_factory
from digest.pipeline import approve_issue
from tests.fixtures.hostile.render.corpus import issue_from_corpus, preview_file
from tests.fixtures.sources.server import SourceServer, serving

# Runs before any of the page's own code: every way a payload shows itself is recorded.
WATCH = """
window.__fired = [];
for (const name of ['alert', 'confirm', 'prompt', 'print', 'open', 'fetch']) {
  window[name] = function (...args) { window.__fired.push(name + ':' + String(args[0])); };
}
// A poked link must not navigate away: its inline onclick still runs, its default does not.
window.addEventListener('click', (event) => event.preventDefault(), true);
"""
# Handlers that need a person, for every element at once: pointer, focus, click, keys.
POKE = """
() => {
  const kinds = ['mouseover', 'mouseenter', 'mousemove', 'mousedown', 'mouseup', 'click',
                 'dblclick', 'focus', 'focusin', 'blur', 'keydown', 'input', 'toggle'];
  let poked = 0;
  for (const el of document.querySelectorAll('*')) {
    if (typeof el.focus === 'function') el.focus();
    for (const kind of kinds) el.dispatchEvent(new Event(kind, {bubbles: true, cancelable: true}));
    poked++;
  }
  return poked;
}
"""
# What Chromium parsed: scripts, handlers, and links it would follow somewhere odd.
DOM_PROBLEMS = """
() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    if (['script', 'iframe', 'object', 'embed', 'form', 'base', 'svg', 'math'].includes(tag))
      found.push('element ' + tag);
    for (const attr of el.attributes)
      if (attr.name.startsWith('on') || attr.name === 'srcdoc' || attr.name === 'formaction')
        found.push(tag + ' ' + attr.name);
  }
  for (const a of document.querySelectorAll('a[href]')) {
    const raw = a.getAttribute('href');
    if (!raw.startsWith('#') && !['http:', 'https:', 'mailto:'].includes(a.protocol))
      found.push('link ' + raw);
  }
  for (const img of document.querySelectorAll('img[src]'))
    if (!['http:', 'https:'].includes(new URL(img.src).protocol)) found.push('img ' + img.src);
  for (const meta of document.querySelectorAll('meta[http-equiv]'))
    if (meta.httpEquiv.toLowerCase() === 'refresh') found.push('meta refresh');
  return found;
}
"""


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        yield running


def open_and_poke(browser: Any, path: Path, shot: Path) -> dict[str, list[str]]:
    context = browser.new_context(viewport={"width": 800, "height": 900})
    requests: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH)
    try:
        page.goto(path.as_uri(), wait_until="load")
        assert page.evaluate(POKE) > 100
        page.mouse.move(400, 300)  # and a real pointer over the middle of the page
        page.screenshot(path=shot, full_page=True)
        return {
            "dialogs": dialogs,
            "fired": page.evaluate("window.__fired"),
            "dom": page.evaluate(DOM_PROBLEMS),
            "url": [page.url],
            "requests": requests,
        }
    finally:
        context.close()


def test_the_preview_file_of_a_hostile_issue_runs_no_script(
    browser: Any, sqlite_url: str, server: SourceServer, tmp_path: Path, shots: Path
) -> None:
    with session_factory(sqlite_url)() as session:
        hostile = issue_from_corpus(session, server, approve=False)
        draft = tmp_path / "draft.html"
        preview_file(sqlite_url, hostile.issue_id, draft)
        approve_issue(session, hostile.issue_id, get_settings())
        session.commit()
        frozen = tmp_path / "frozen.html"
        preview_file(sqlite_url, hostile.issue_id, frozen)

    for path in (draft, frozen):
        seen = open_and_poke(browser, path, shots / f"hostile-{path.stem}.png")
        assert "Quote breakouts in href and src" in path.read_text()  # the corpus is there
        assert seen["dialogs"] == []
        assert seen["fired"] == []
        assert seen["dom"] == []
        assert seen["url"] == [path.as_uri()]  # no refresh or script moved the page
        # Remote images were asked for (and refused): the page did load the corpus's images,
        # and none of those requests carries the sample reader's address.
        assert any("evil.example" in url for url in seen["requests"])
        assert not [url for url in seen["requests"] if "alex.reader" in url]
