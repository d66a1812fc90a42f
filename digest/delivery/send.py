"""The send path: claim a batch, personalise and send it, write the ledger as results arrive.

Unit-of-work runners: they take a sessionmaker and commit themselves, because the promise
depends on when things commit. The claim commits before anything is sent (a crash then
leaves leased rows that another worker reclaims when the lease runs out); results are
committed in groups right after the server's 250 (every FLUSH_EVERY results or
FLUSH_SECONDS), so a crash duplicates only what was acknowledged but not yet written.

Each claim holds its rows under a lease token of its own, renewed a few times a lease while
the batch works (one statement per renewal, not per message). Every ledger write is fenced by
that token: a batch that stalled past its lease and was taken over writes nothing over the
new holder, counts the refusal, and stops.

A run (`refill_for` seconds) claims the next batch while the current one is still on the wire,
when the transport asks for it, so the sessions never drain at a batch boundary; each claim
keeps its own lease token, and one writer fences each result by the token of its claim.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.db import is_postgres
from digest.delivery.dkim import dkim_signer
from digest.delivery.errors import DeliveryError, LedgerError
from digest.delivery.ledger import (
    Claim,
    claim,
    finish_issue_if_done,
    mark_deferred,
    mark_failed,
    mark_retry,
    mark_sent,
    next_attempt_at,
    renew_lease,
)
from digest.delivery.message import MessageTemplate
from digest.delivery.recipient import Recipient
from digest.delivery.transports import Render, SendResult, Transport
from digest.keys import LinkKeys, signing_keys
from digest.logs import log_context
from digest.metrics import metrics
from digest.models import DeliveryStatus, Issue, IssueStatus, IssueVariant, PausedDomain, utcnow
from digest.subscribers.feedback import FeedbackPolicy, domain_of, paused_domains
from digest.tokens import Signer

log = logging.getLogger(__name__)

FLUSH_EVERY = 250
FLUSH_SECONDS = 0.2
# How long a worker's run keeps claiming further batches of one issue: long enough that the
# boundaries between runs (a drain, a task round trip) cost little, short enough that a
# progress bar moves and other issues' tasks get their turn.
RUN_SECONDS = 5.0


def run_seconds(settings: Settings) -> float:
    """A run's claiming time: well inside a batch's time limit, which defers what is left."""
    return min(RUN_SECONDS, settings.max_batch_seconds / 2)


# Senders claim only an issue handed to them (`digest.pipeline`): paused, cancelled and
# not-yet-sent ones are left alone.
SENDABLE = (IssueStatus.SENDING,)


@dataclass(frozen=True, slots=True)
class BatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # claimed, but no longer confirmed or now suppressed
    deferred: int = 0  # claimed, not tried: back to pending without using an attempt
    # Rows lost to another worker (the batch stalled past its lease and they were claimed
    # again): results the ledger refused, and rows found taken over before their result.
    # Any loss stops the batch: the rest may be taken over too.
    refused: int = 0

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def new_owner() -> str:
    """A lease owner name that tells operators which process holds a lease."""
    return f"{socket.gethostname()[:48]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_token(owner: str) -> str:
    """A fencing token for one claim: the owner (which process) and a nonce (which claim),
    so no two claims, even of one process, ever hold a row under the same name."""
    return f"{owner[:80]}/{uuid.uuid4().hex[:12]}"


class _LedgerWriter:
    """Groups results and commits them promptly, fenced by the batch's lease; renews that
    lease while the batch is still working; keeps the counts."""

    def __init__(
        self,
        sf: sessionmaker[Session],
        issue_id: int,
        errors_before: int,
        settings: Settings,
        on_renew: Callable[[], None] | None = None,
    ) -> None:
        self.sf = sf
        self.issue_id = issue_id
        # Claimed rows whose result is not written yet, and the lease of their claim.
        self.unsettled: dict[int, str] = {}
        self.buffer: list[SendResult] = []
        self.flushed_at = self.renewed_at = time.monotonic()
        self.lease_seconds = settings.lease_seconds
        self.max_attempts = settings.max_attempts
        self.retry_base_seconds = settings.retry_base_seconds
        # Three renewals a lease: a batch held up by a slow relay or a loaded machine keeps
        # its rows unless it makes no progress at all for two thirds of a lease.
        self.renew_every = settings.lease_seconds / 3
        self.on_renew = on_renew
        self.sent = self.retried = self.failed = self.deferred = self.refused = 0
        self.lost = False  # some rows were taken over: the batch must stop
        # The issue's count of errors in a row may be above 0 (from an earlier batch too):
        # the next success must write it back to 0.
        self.errors_seen = errors_before > 0
        # Transport errors in a row (refused, dropped sessions, refused sender) before the
        # issue pauses itself: the relay is down or refuses us, and retrying everything would
        # burn attempts.
        self.pause_after = settings.pause_after_errors
        self.policy = FeedbackPolicy.from_settings(settings)
        self.fast: Session | None = None  # see _write_sent
        self.postgres: bool | None = None  # not known before the first flush

    def hold(self, lease: str, ids: Sequence[int]) -> None:
        """Rows just claimed under `lease`: their results are written fenced by it."""
        self.unsettled.update(dict.fromkeys(ids, lease))

    def unreported(self) -> list[int]:
        """Rows held that have no result yet, written or waiting to be."""
        waiting = {r.delivery_id for r in self.buffer}
        return [i for i in self.unsettled if i not in waiting]

    def _by_lease(self, results: list[SendResult]) -> dict[str, list[SendResult]]:
        """The results by the lease of their claim (one, but at a boundary between claims);
        they are settled from here on. A result for a row this writer does not hold (a bug)
        is refused like one whose row was taken over."""
        groups: dict[str, list[SendResult]] = {}
        stray = 0
        for r in results:
            lease = self.unsettled.pop(r.delivery_id, None)
            if lease is None:
                stray += 1
            else:
                groups.setdefault(lease, []).append(r)
        self._refused(stray, "-")
        return groups

    def add(self, chunk: Sequence[SendResult]) -> None:
        """Take results (an empty chunk: the transport is waiting); write them when due, and
        renew the lease when due. Called at least every fraction of a second while sending."""
        self.buffer.extend(chunk)
        now = time.monotonic()
        renew = now - self.renewed_at >= self.renew_every
        due = now - self.flushed_at >= FLUSH_SECONDS
        if renew or len(self.buffer) >= FLUSH_EVERY or (self.buffer and due):
            self.flush(renew=renew)

    def flush(self, *, renew: bool = False) -> None:
        self.flushed_at = time.monotonic()
        if not self.buffer and not renew:
            return
        results, self.buffer = self.buffer, []
        now = utcnow()
        only_sent = not renew and not self.errors_seen and all(r.outcome == "sent" for r in results)
        if only_sent and self.postgres is not False and self._write_sent(results, now):
            return
        groups = self._by_lease(results)
        with self.sf.begin() as session:
            refused: dict[str, int] = {}
            for lease, group in groups.items():
                refused[lease] = len(group) - self._write(session, group, now, lease)
            if renew:
                self.renewed_at = time.monotonic()
                for lease, count in Counter(self.unsettled.values()).items():
                    held = renew_lease(
                        session, self.issue_id, lease, now, lease_seconds=self.lease_seconds
                    )
                    # Fewer than unsettled: some ran out and were claimed again (counted as
                    # refused by release, which gives back what is still held).
                    self.lost = self.lost or held < count
            self._count_errors(session, results)
        for lease, n in refused.items():
            self._refused(n, lease)
        if renew and not self.lost and self.on_renew is not None:
            self.on_renew()

    def _write_sent(self, results: list[SendResult], now: datetime) -> bool:
        """The common flush, every result a 250 and nothing else to write: on PostgreSQL one
        UPDATE on a connection held for the batch in autocommit (its own transaction, committed
        when it returns, as before), instead of a checkout, its ping, BEGIN, UPDATE and COMMIT.
        False when the database is not PostgreSQL (SQLite keeps the general path)."""
        if self.fast is None:
            session = self.sf()
            self.postgres = is_postgres(session)
            if not self.postgres:
                session.close()
                return False
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            self.fast = session
        _log_results(results)
        for lease, group in self._by_lease(results).items():
            written = mark_sent(self.fast, [r.delivery_id for r in group], now, lease=lease)
            self.sent += written
            self._refused(len(group) - written, lease)
        return True

    def close(self) -> None:
        """Give back the connection held for the batch."""
        if self.fast is not None:
            self.fast.close()
            self.fast = None

    def _refused(self, refused: int, lease: str) -> None:
        if refused:
            self.refused += refused
            self.lost = True
            log.warning(
                "issue %s: %d results refused: lease %s was taken over",
                self.issue_id,
                refused,
                lease,
            )

    def _write(self, session: Session, results: list[SendResult], now: datetime, lease: str) -> int:
        """Write the results of one claim (fenced by its lease, a few statements whatever
        their number); returns how many the ledger took."""
        _log_results(results)
        sent_ids = [r.delivery_id for r in results if r.outcome == "sent"]
        written = sent = mark_sent(session, sent_ids, now, lease=lease)
        self.sent += sent
        deferred: dict[tuple[int, str], list[int]] = {}
        for r in results:
            if r.outcome == "deferred":
                # Never before the window opens.
                key = (math.ceil(r.retry_after), r.detail)
                deferred.setdefault(key, []).append(r.delivery_id)
        for (after, detail), ids in deferred.items():
            until = now + timedelta(seconds=after)
            done = mark_deferred(session, ids, until, detail, lease=lease)
            self.deferred += done
            written += done
        retries = {r.delivery_id: r.detail for r in results if r.outcome == "retry"}
        statuses = (
            mark_retry(
                session,
                retries,
                now,
                lease=lease,
                max_attempts=self.max_attempts,
                base_seconds=self.retry_base_seconds,
            )
            if retries
            else {}
        )
        gave_up = sum(1 for status in statuses.values() if status == DeliveryStatus.FAILED)
        self.failed += gave_up
        self.retried += len(statuses) - gave_up
        written += len(statuses)
        for r in results:
            if r.outcome == "failed" and mark_failed(
                session,
                r.delivery_id,
                r.detail,
                lease=lease,
                verdict=r.verdict,
                policy=self.policy,
            ):
                self.failed += 1
                written += 1
        return written

    def release(self) -> None:
        """The batch stopped early: rows it still holds and has no result for go back to
        pending at once (their attempt given back) instead of waiting for the lease to run
        out. A message cut off mid-transaction may have been accepted: a duplicate bounded,
        like a crash's, by what was in flight."""
        if not self.unsettled:
            return
        claims: dict[str, list[int]] = {}
        for delivery_id, lease in self.unsettled.items():
            claims.setdefault(lease, []).append(delivery_id)
        with self.sf.begin() as session:
            released = {
                lease: mark_deferred(session, sorted(ids), utcnow(), "batch stopped", lease=lease)
                for lease, ids in claims.items()
            }
        self.unsettled.clear()
        for lease, ids in claims.items():
            taken = len(ids) - released[lease]
            self.deferred += released[lease]
            self.refused += taken
            if taken:
                log.warning(
                    "issue %s: %d rows of lease %s were taken over before their result",
                    self.issue_id,
                    taken,
                    lease,
                )

    def _count_errors(self, session: Session, results: list[SendResult]) -> None:
        """Track transport errors in a row on the issue; pause it when they pile up."""
        trailing = 0
        any_ok = False
        for r in results:
            if r.outcome == "deferred":
                continue  # not tried: says nothing about the relay
            if r.transport_error:
                trailing += 1
            else:
                any_ok, trailing = True, 0
        if not trailing and not (any_ok and self.errors_seen):
            return  # no error and no count to reset: the common case costs no statement
        self.errors_seen = trailing > 0
        issue = cast(Table, Issue.__table__)
        errors = trailing if any_ok else issue.c.consecutive_errors + trailing
        session.execute(
            update(issue).where(issue.c.id == self.issue_id).values(consecutive_errors=errors)
        )
        if not self.pause_after:
            return
        paused = session.execute(
            update(issue)
            .where(
                issue.c.id == self.issue_id,
                issue.c.status == IssueStatus.SENDING,
                issue.c.consecutive_errors >= self.pause_after,
            )
            .values(status=IssueStatus.PAUSED)
        )
        if paused.rowcount:  # type: ignore[attr-defined]
            metrics().pauses.labels(reason="errors").inc()
            log.warning(
                "issue %s paused: %d transport errors in a row", self.issue_id, self.pause_after
            )


def _log_results(results: list[SendResult]) -> None:
    """A line per delivery that was not sent (INFO), and per sent one at DEBUG."""
    debug = log.isEnabledFor(logging.DEBUG)
    for r in results:
        if r.outcome != "sent" or debug:
            log.log(
                logging.DEBUG if r.outcome == "sent" else logging.INFO,
                "delivery %s %s: %s",
                r.delivery_id,
                r.outcome,
                r.detail,
                extra={"delivery_id": r.delivery_id},
            )


# Frozen messages this process has loaded, by (kind, id, slot marker, link keys): an issue's
# or a variant's message never changes once frozen, and its marker is drawn afresh by each
# render (approval renders and freezes together), so the key cannot name another; the link
# keys its signer was made with are part of it, so a rotation takes effect at the next batch.
# Bounded, so a worker's memory stays flat whatever the number of issues and variants.
_CacheKey = tuple[str, int, str, LinkKeys]
_TEMPLATE_CACHE: OrderedDict[_CacheKey, MessageTemplate] = OrderedDict()
TEMPLATE_CACHE_SIZE = 256


def _remember(key: _CacheKey, template: MessageTemplate) -> None:
    _TEMPLATE_CACHE[key] = template
    while len(_TEMPLATE_CACHE) > TEMPLATE_CACHE_SIZE:
        _TEMPLATE_CACHE.popitem(last=False)


def _issue_template(
    session: Session, issue_id: int, marker: str | None, settings: Settings
) -> MessageTemplate:
    """The issue's own frozen message: read from the database only when this process has
    not loaded it yet (it is the largest column of the issue, read once, not per batch)."""
    keys = signing_keys(settings)
    key = ("issue", issue_id, marker or "", keys)
    template = _TEMPLATE_CACHE.get(key)
    if template is None:
        data = session.scalar(select(Issue.message_template).where(Issue.id == issue_id))
        if data is None:
            raise DeliveryError(
                f"issue {issue_id} has no frozen message: prepare it before sending"
            )
        template = MessageTemplate.from_bytes(data, Signer(keys))
        _remember(key, template)
    _TEMPLATE_CACHE.move_to_end(key)
    return template


def _variant_templates(
    session: Session,
    issue_id: int,
    recipients: Sequence[Recipient],
    settings: Settings,
) -> dict[int | None, MessageTemplate]:
    """The message of each variant the batch's recipients read."""
    wanted = {r.variant_id for r in recipients}
    templates: dict[int | None, MessageTemplate] = {}
    ids = sorted(v for v in wanted if v is not None)
    if not ids:
        return templates
    rows = session.execute(
        select(IssueVariant.id, IssueVariant.slot_marker).where(
            IssueVariant.id.in_(ids), IssueVariant.issue_id == issue_id
        )
    )
    markers = {int(i): marker for i, marker in rows}
    keys = signing_keys(settings)
    missing = [i for i in ids if ("variant", i, markers.get(i) or "", keys) not in _TEMPLATE_CACHE]
    if missing:
        signer = Signer(keys)
        frozen = session.execute(
            select(IssueVariant.id, IssueVariant.slot_marker, IssueVariant.message_template).where(
                IssueVariant.id.in_(missing)
            )
        )
        for variant_id, marker, data in frozen:
            if data is not None:
                key = ("variant", variant_id, marker or "", keys)
                _remember(key, MessageTemplate.from_bytes(data, signer))
    for i in ids:
        key = ("variant", i, markers.get(i) or "", keys)
        if key not in _TEMPLATE_CACHE:
            raise DeliveryError(f"issue {issue_id}: variant {i} has no frozen message")
        _TEMPLATE_CACHE.move_to_end(key)
        templates[i] = _TEMPLATE_CACHE[key]
    return templates


def send_batch(
    sf: sessionmaker[Session],
    issue_id: int,
    owner: str,
    transport: Transport,
    settings: Settings,
    *,
    size: int | None = None,
    on_renew: Callable[[], None] | None = None,
    refill_for: float = 0.0,
    stopping: Callable[[], bool] | None = None,
) -> BatchResult:
    """Claim up to `size` (default: `settings.batch_size`) due deliveries of the issue, send
    them, record the results. Sends nothing when the issue is not sending (paused, cancelled,
    not handed over ...). With `refill_for`, a run: for that many seconds, claim the next
    batch whenever the transport asks for it (see _Refill), and count them all; `stopping`
    says the process is shutting down, which ends the run at the batch going.

    The claim's lease is a token of its own (see lease_token), renewed while the batch works
    (`on_renew` is called after each renewal: a caller's own heartbeat). A batch that finds
    some of its rows taken over (it stalled for longer than its lease) stops sending: the
    rest may be someone else's too. What it still holds goes back to pending at once."""
    with log_context(issue_id=issue_id):
        return _send_batch(
            sf,
            issue_id,
            owner,
            transport,
            settings,
            size=size or settings.batch_size,
            on_renew=on_renew,
            refill_for=refill_for,
            stopping=stopping,
        )


def _send_batch(
    sf: sessionmaker[Session],
    issue_id: int,
    owner: str,
    transport: Transport,
    settings: Settings,
    *,
    size: int,
    on_renew: Callable[[], None] | None,
    refill_for: float,
    stopping: Callable[[], bool] | None,
) -> BatchResult:
    lease = lease_token(owner)
    with sf() as session:
        # Only the columns a batch needs: the frozen message is read once per process.
        issue = session.execute(
            select(Issue.status, Issue.slot_marker, Issue.consecutive_errors).where(
                Issue.id == issue_id
            )
        ).one_or_none()
        if issue is None:
            raise LedgerError(f"issue {issue_id} does not exist")
        if issue.status not in SENDABLE:
            return BatchResult()
        # Every issue sent has its own message frozen.
        own = _issue_template(session, issue_id, issue.slot_marker, settings)
        # A bad DKIM key fails here, before anything is claimed.
        signer = dkim_signer(
            settings.dkim_key_file, settings.dkim_selector, settings.dkim_domain or own.domain
        )
        errors_before = issue.consecutive_errors
        claimed, templates, paused = _take_claim(session, issue_id, lease, size, settings)
    templates[None] = own
    recipients, skipped = claimed.recipients, claimed.skipped
    if not recipients:
        return BatchResult(claimed=skipped, skipped=skipped)
    writer = _LedgerWriter(sf, issue_id, errors_before, settings, on_renew)
    writer.hold(lease, [r.delivery_id for r in recipients])
    if paused:
        recipients = _hold_paused(recipients, paused, writer)

    def personalise(recipient: Recipient) -> bytes:
        return templates[recipient.variant_id].personalise(recipient)

    render: Render = personalise if signer is None else signer.wrap(personalise)
    refill = _Refill(sf, issue_id, owner, settings, size, templates, writer, refill_for, stopping)
    results = transport.send(
        own.return_path, recipients, render, refill if refill_for > 0 else None
    )
    try:
        _send_all(results, writer)
    finally:
        if isinstance(results, Generator):
            results.close()  # stops the transport now (SMTP: cancels what is on the wire)
        try:
            writer.flush()
        finally:
            writer.close()
    # Rows still held: the batch stopped early (its lease lost), or a claim of the run failed
    # after it took them; every row the transport was given has its result.
    writer.release()
    return BatchResult(
        len(claimed.recipients) + skipped + refill.claimed,
        writer.sent,
        writer.retried,
        writer.failed,
        skipped + refill.skipped,
        writer.deferred,
        writer.refused,
    )


class _Refill:
    """The transport's `more` for a run: the next batches, claimed in the caller's thread when
    the transport asks (while the current batch is still on the wire), each under a lease
    token of its own and checked like the first (the issue still sending, its variants'
    messages loaded, paused domains held back), for `seconds` or until `stopping` says so."""

    def __init__(
        self,
        sf: sessionmaker[Session],
        issue_id: int,
        owner: str,
        settings: Settings,
        size: int,
        templates: dict[int | None, MessageTemplate],
        writer: _LedgerWriter,
        seconds: float,
        stopping: Callable[[], bool] | None,
    ) -> None:
        self.sf, self.issue_id, self.owner = sf, issue_id, owner
        self.settings, self.size = settings, size
        self.templates, self.writer = templates, writer
        self.deadline, self.stopping = time.monotonic() + seconds, stopping
        self.claimed = self.skipped = 0

    def __call__(self) -> list[Recipient]:
        """The next batch; none once the run's time is up, the process is stopping, the batch
        has lost rows, the issue stopped sending, or nothing is due."""
        # The earlier claims' results are all in: written now, the run holds only the claim
        # going and the one it takes next.
        self.writer.flush()
        while not self.writer.lost and time.monotonic() < self.deadline:
            if self.stopping is not None and self.stopping():
                break
            try:
                recipients, taken = self._claim()
            except Exception:  # the rows claimed so far are sent and written regardless
                log.exception("issue %s: the next claim failed: the run ends", self.issue_id)
                return []
            if recipients or not taken:
                return recipients
            # Every row of that claim was skipped or held back: there may be more.
        return []

    def _claim(self) -> tuple[list[Recipient], int]:
        """A claim: the recipients to send now, and how many rows it took."""
        lease = lease_token(self.owner)
        with self.sf() as session:
            status = session.scalar(select(Issue.status).where(Issue.id == self.issue_id))
            if status not in SENDABLE:
                return [], 0
            claimed, variants, paused = _take_claim(
                session, self.issue_id, lease, self.size, self.settings
            )
        recipients = claimed.recipients
        taken = len(recipients) + claimed.skipped
        self.claimed += taken
        self.skipped += claimed.skipped
        self.templates.update(variants)  # before the sessions see a recipient reading one
        self.writer.hold(lease, [r.delivery_id for r in recipients])
        if paused:
            recipients = _hold_paused(recipients, paused, self.writer)
        return recipients, taken


def _take_claim(
    session: Session, issue_id: int, lease: str, size: int, settings: Settings
) -> tuple[Claim, dict[int | None, MessageTemplate], dict[str, PausedDomain]]:
    """Claim a batch under `lease` and commit: its rows, the frozen messages of the variants
    they read, and the destination domains paused now. A variant without its message fails
    the claim before it commits (nothing claimed: the rows stay as they were)."""
    claimed = claim(session, issue_id, lease, size, lease_seconds=settings.lease_seconds)
    try:
        variants = _variant_templates(session, issue_id, claimed.recipients, settings)
    except Exception:
        session.rollback()
        raise
    paused = paused_domains(session) if claimed.recipients else {}
    session.commit()
    if claimed.recipients or claimed.skipped:
        metrics().batches_claimed.inc()
    if claimed.expired:
        metrics().lease_expiries.inc(claimed.expired)
    return claimed, variants, paused


def _hold_paused(
    recipients: list[Recipient], paused: dict[str, PausedDomain], writer: _LedgerWriter
) -> list[Recipient]:
    """Recipients at a paused destination domain wait, untried, until its pause ends."""
    now = utcnow()
    held: list[SendResult] = []
    going: list[Recipient] = []
    for recipient in recipients:
        pause = paused.get(domain_of(recipient.email))
        if pause is None:
            going.append(recipient)
            continue
        wait = max((pause.paused_until - now).total_seconds(), 1.0)
        detail = f"destination domain paused: {pause.reason}"[:1000]
        held.append(SendResult(recipient.delivery_id, "deferred", detail, retry_after=wait))
    writer.add(held)
    return going


def _send_all(chunks: Iterator[list[SendResult]], writer: _LedgerWriter) -> None:
    """Feed the transport's results to the writer until they end or the lease is lost.
    Should the transport itself stop with an error (a bug: per-recipient errors come back as
    results), the recipients it had not reported are retried with the reason (an attempt
    used, with back-off, so a bug that recurs ends in 'failed' instead of a loop) rather
    than sitting in 'sending' until their lease runs out; an error of the ledger's own
    propagates (its rows keep their lease)."""
    while not writer.lost:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except Exception as exc:
            log.exception("issue %s: the transport stopped mid-batch", writer.issue_id)
            detail = f"batch stopped: {type(exc).__name__}: {exc}"[:1000]
            writer.add([SendResult(i, "retry", detail) for i in writer.unreported()])
            return
        writer.add(chunk)


def send_issue_inline(
    sf: sessionmaker[Session],
    issue_id: int,
    transport: Transport,
    settings: Settings,
    on_progress: Callable[[BatchResult], None] | None = None,
    *,
    size: int | None = None,
    wait_for_retries: bool = False,
    max_wait_seconds: float = 3600.0,
) -> BatchResult:
    """Send batches in this process until nothing is claimable; the in-process path for an
    issue handed to the senders (`digest.pipeline.start_sending`). With `wait_for_retries`,
    also sleep until waiting retries come due (up to a bound). `on_progress` gets the running
    totals after each run of batches."""
    owner = new_owner()
    totals = BatchResult()
    deadline = time.monotonic() + max_wait_seconds
    refill_for = run_seconds(settings)
    while True:
        result = send_batch(
            sf, issue_id, owner, transport, settings, size=size, refill_for=refill_for
        )
        totals += result
        if on_progress is not None and result.claimed:
            on_progress(totals)
        if result.claimed:
            continue
        if not wait_for_retries:
            break
        with sf() as session:
            status = session.scalar(select(Issue.status).where(Issue.id == issue_id))
            due = next_attempt_at(session, issue_id)
        if status not in SENDABLE or due is None:
            break
        pause = (due - utcnow()).total_seconds()
        if time.monotonic() + max(pause, 0) > deadline:
            break
        time.sleep(min(max(pause, 0.05), 5.0))
    with sf.begin() as session:
        finish_issue_if_done(session, issue_id)
    return totals
