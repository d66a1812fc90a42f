"""Returned mail of our own making, in the shapes the big mail systems send it.

Each builder takes the copy it answers (its return path, and the headers a report quotes) and
gives the raw message as it would arrive at the return-path mailbox. The layouts follow what
each system sends (RFC 3464 DSNs from Postfix, Sendmail, Exchange/Office 365, Gmail and
Amazon SES; Exim's and Yahoo's free-text bounces; RFC 5965 ARF reports; Microsoft JMRP).
"""

from __future__ import annotations

from dataclasses import dataclass

B = "=_boundary_42"


@dataclass(frozen=True)
class Sent:
    """The copy a report answers."""

    rcpt: str
    return_path: str
    headers: str  # the copy's header block, CRLF line ends, no blank line

    @property
    def with_return_path(self) -> str:
        return f"Return-Path: <{self.return_path}>\r\n{self.headers}"


def _dsn(
    sent: Sent,
    *,
    sender: str,
    subject: str,
    human: str,
    reporting_mta: str,
    status: str,
    diagnostic: str,
    action: str = "failed",
    extra_fields: str = "",
    original: str = "text/rfc822-headers",
    extra_headers: str = "",
) -> bytes:
    original_part = sent.with_return_path + (
        "\r\n\r\nHello\r\n" if original == "message/rfc822" else "\r\n"
    )
    return (
        f"Return-Path: <>\r\nDelivered-To: {sent.return_path}\r\n"
        f"From: {sender}\r\nTo: {sent.return_path}\r\nSubject: {subject}\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f"{extra_headers}"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{B}"\r\n\r\n'
        f"--{B}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{human}\r\n\r\n"
        f"--{B}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporting_mta}\r\n{extra_fields}\r\n"
        f"Final-Recipient: rfc822; {sent.rcpt}\r\nOriginal-Recipient: rfc822;{sent.rcpt}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        f"--{B}\r\nContent-Type: {original}\r\n\r\n{original_part}\r\n--{B}--\r\n"
    ).encode()


def postfix(sent: Sent, status: str = "5.1.1", diagnostic: str = "") -> bytes:
    diagnostic = diagnostic or (
        f"550 5.1.1 <{sent.rcpt}>: Recipient address rejected: User unknown in virtual "
        "mailbox table"
    )
    return _dsn(
        sent,
        sender="MAILER-DAEMON@mail.example.org (Mail Delivery System)",
        subject="Undelivered Mail Returned to Sender",
        human="This is the mail system at host mail.example.org.\r\n\r\nI'm sorry to have to "
        "inform you that your message could not\r\nbe delivered to one or more recipients.",
        reporting_mta="mail.example.org",
        extra_fields="X-Postfix-Queue-ID: 4Qx1Y2Z3\r\n"
        f"X-Postfix-Sender: rfc822; {sent.return_path}\r\n",
        status=status,
        diagnostic=diagnostic,
        extra_headers="X-Postfix-Queue-ID: 4Qx1Y2Z3\r\n",
    )


def postfix_delay(sent: Sent) -> bytes:
    return _dsn(
        sent,
        sender="MAILER-DAEMON@mail.example.org (Mail Delivery System)",
        subject="Delayed Mail (still being retried)",
        human="This is the mail system at host mail.example.org.\r\n\r\n#################\r\n"
        "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
        reporting_mta="mail.example.org",
        action="delayed",
        status="4.4.1",
        diagnostic="connect to mx.example.net[192.0.2.7]:25: Connection timed out",
    )


def sendmail(sent: Sent) -> bytes:
    return _dsn(
        sent,
        sender="Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>",
        subject="Returned mail: see transcript for details",
        human="The original message was received at Tue, 1 Dec 2026 09:00:00 GMT\r\n"
        f"   ----- The following addresses had permanent fatal errors -----\r\n<{sent.rcpt}>\r\n"
        "    (reason: 552 5.2.2 Mailbox full)",
        reporting_mta="relay.example.net",
        extra_fields="Received-From-MTA: DNS; mail.example.org\r\n",
        status="5.2.2",
        diagnostic="552 5.2.2 Mailbox full",
        original="message/rfc822",
    )


def exchange(sent: Sent, blocked: bool = False) -> bytes:
    if blocked:
        status = "5.7.1"
        diagnostic = (
            "550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. "
            "To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.1 "
            "AS(1450) [AM0PR01MB1234.eurprd01.prod.outlook.com]"
        )
    else:
        status = "5.1.10"
        diagnostic = (
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
        )
    return _dsn(
        sent,
        sender="Microsoft Outlook <postmaster@outlook.com>",
        subject="Undeliverable: News",
        human="Your message to " + sent.rcpt + " couldn't be delivered.\r\n"
        "Diagnostic information for administrators:\r\nGenerating server: AM0PR01MB1234",
        reporting_mta="AM0PR01MB1234.eurprd01.prod.outlook.com",
        extra_fields="Received-From-MTA: dns; mail.example.org\r\n"
        "Arrival-Date: Tue, 1 Dec 2026 09:00:00 +0000\r\n",
        status=status,
        diagnostic=diagnostic,
        extra_headers="X-MS-Exchange-Message-Is-Ndr: \r\nContent-Language: en-US\r\n",
    )


def gmail(sent: Sent, dmarc_block: bool = False) -> bytes:
    if dmarc_block:
        status = "5.7.26"
        diagnostic = (
            "550-5.7.26 Unauthenticated email from example.org is not accepted due to "
            "domain's DMARC policy. Please contact the administrator of example.org domain "
            "if this was a legitimate mail. 550 5.7.26 DMARC policy - gsmtp"
        )
    else:
        status = "5.1.1"
        diagnostic = (
            "550-5.1.1 The email account that you tried to reach does not exist. Please try "
            "double-checking the recipient's email address for typos. 550 5.1.1 "
            "https://support.google.com/mail/?p=NoSuchUser - gsmtp"
        )
    return _dsn(
        sent,
        sender="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        subject="Delivery Status Notification (Failure)",
        human="** Address not found **",
        reporting_mta="googlemail.com",
        status=status,
        diagnostic=diagnostic,
        extra_headers="X-Failed-Recipients: " + sent.rcpt + "\r\n",
    )


def ses(sent: Sent, full: bool = False) -> bytes:
    status, diagnostic = (
        ("5.2.2", "552 5.2.2 <" + sent.rcpt + ">: Mailbox full, quota exceeded")
        if full
        else ("5.1.1", "550 5.1.1 user unknown")
    )
    return _dsn(
        sent,
        sender="MAILER-DAEMON@amazonses.com",
        subject="Delivery Status Notification (Failure)",
        human="An error occurred while trying to deliver the mail to the following recipients:"
        f"\r\n{sent.rcpt}",
        reporting_mta="a8-30.smtp-out.amazonses.com",
        status=status,
        diagnostic=diagnostic,
        original="message/rfc822",
        extra_headers="X-SES-Outgoing: 2026.12.01-54.240.8.30\r\n",
    )


def exim(sent: Sent) -> bytes:
    return (
        f"Return-Path: <>\r\nDelivered-To: {sent.return_path}\r\n"
        f"X-Failed-Recipients: {sent.rcpt}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n"
        f"To: {sent.return_path}\r\nSubject: Mail delivery failed: returning message to sender\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        f"  {sent.rcpt}\r\n"
        f"    SMTP error from remote mail server after RCPT TO:<{sent.rcpt}>:\r\n"
        f"    550 5.1.1 <{sent.rcpt}>: Recipient address rejected: User unknown\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        f"{sent.with_return_path}\r\n\r\nHello\r\n"
    ).encode()


def yahoo(sent: Sent) -> bytes:
    return (
        f"Return-Path: <>\r\nDelivered-To: {sent.return_path}\r\n"
        "From: MAILER-DAEMON@yahoo.com\r\n"
        f"To: {sent.return_path}\r\nSubject: Failure Notice\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{B}"\r\n\r\n'
        f"--{B}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "Sorry, we were unable to deliver your message to the following address.\r\n\r\n"
        f"<{sent.rcpt}>:\r\n"
        f"Remote host said: 554 delivery error: dd This user doesn't have a yahoo.com account "
        f"({sent.rcpt}) [0] - mta1.mail.ne1.yahoo.com\r\n\r\n"
        f"--{B}\r\nContent-Type: message/rfc822\r\n\r\n{sent.with_return_path}\r\n\r\nHello\r\n"
        f"--{B}--\r\n"
    ).encode()


def arf(sent: Sent, feedback_type: str = "abuse") -> bytes:
    extra = (
        "Auth-Failure: dmarc\r\nReported-Domain: example.org\r\n"
        if feedback_type == "auth-failure"
        else ""
    )
    return (
        "From: Feedback Loop <fbl@isp.example.net>\r\nTo: fbl@example.org\r\n"
        "Subject: Abuse report\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{B}"\r\n\r\n'
        f"--{B}\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        f"--{B}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{sent.return_path}>\r\nOriginal-Rcpt-To: <{sent.rcpt}>\r\n"
        f"Arrival-Date: Tue, 1 Dec 2026 09:00:00 +0000\r\n{extra}\r\n"
        f"--{B}\r\nContent-Type: message/rfc822\r\n\r\n{sent.with_return_path}\r\n\r\nHello\r\n"
        f"--{B}--\r\n"
    ).encode()


def jmrp(sent: Sent) -> bytes:
    return (
        "From: staff@hotmail.com\r\nTo: jmrp@example.org\r\n"
        "Subject: complaint about message from 192.0.2.1\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{B}"\r\n\r\n'
        f"--{B}\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report for an email "
        "message received from IP 192.0.2.1 on Tue, 01 Dec 2026 09:00:00 -0800.\r\n"
        "For more information about this format please see http://postmaster.live.com\r\n"
        f"--{B}\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
        f"X-HmXmrOriginalRecipient: <{sent.rcpt}>\r\nX-Message-Delivery: Vj0xLjE7\r\n"
        f"{sent.with_return_path}\r\n\r\nHello\r\n--{B}--\r\n"
    ).encode()


def auto_reply(sent: Sent) -> bytes:
    return (
        f"From: {sent.rcpt}\r\nTo: {sent.return_path}\r\nSubject: Automatic reply: News\r\n"
        "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n"
        "Content-Type: text/plain\r\n\r\nI am out of the office until Monday. "
        "For urgent matters write to colleague@example.net.\r\n"
    ).encode()


FORMATS = {
    "postfix": postfix,
    "exim": exim,
    "sendmail": sendmail,
    "exchange": exchange,
    "gmail": gmail,
    "yahoo": yahoo,
    "ses": ses,
}
