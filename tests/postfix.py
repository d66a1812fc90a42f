"""A private Postfix on 127.0.0.1 for tests: Debian's binaries with a config and queue
directory of its own under a temporary folder, on a free port. It delivers the domain
example.net into a Maildir per listed user (virtual), bounces mail for unlisted users there
after accepting it (so a DSN is made, not a reply at RCPT), and relays the return-path domain
to a port of the test's choosing (`digest inbound serve`)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, port_open
from tests.processes import wait_until
from tests.smtp_server import free_port

POSTFIX = "/usr/sbin/postfix"
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class Postfix:
    root: Path
    port: int

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / "example.net" / user

    @property
    def log(self) -> str:
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""


def require_postfix() -> None:
    problem = ""
    if not os.path.exists(POSTFIX):
        problem = "Postfix is not installed"
    elif os.geteuid() != 0:
        problem = "a private Postfix needs root to start"
    if problem:
        if IN_CI:
            pytest.fail(problem + " (CI must run the real-service tests)")
        pytest.skip(problem)


@contextmanager
def private_postfix(users: list[str], relay_domain: str, relay_port: int) -> Iterator[Postfix]:
    require_postfix()
    # Postfix's own user must reach its folders: pytest's tmp_path is private to root.
    root = Path(tempfile.mkdtemp(prefix="digest-postfix-"))
    root.chmod(0o755)
    conf, data, mail = root / "conf", root / "data", root / "mail"
    for folder in (conf, root / "queue", data, mail):
        folder.mkdir(parents=True)
    owner = pwd.getpwnam("postfix")
    os.chown(data, owner.pw_uid, owner.pw_gid)
    os.chown(mail, owner.pw_uid, owner.pw_gid)
    port = free_port()
    (conf / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.test
mydomain = test
myorigin = mail.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file_prefixes = {root}
maillog_file = {root}/postfix.log
disable_dns_lookups = yes
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_reject_unlisted_recipient = no
virtual_mailbox_domains = example.net
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{conf}/vmailbox
virtual_uid_maps = static:{owner.pw_uid}
virtual_gid_maps = static:{owner.pw_gid}
transport_maps = texthash:{conf}/transport
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
delay_warning_time = 0
"""
    )
    (conf / "master.cf").write_text(MASTER_CF.format(port=port))
    (conf / "vmailbox").write_text("".join(f"{u}@example.net example.net/{u}/\n" for u in users))
    (conf / "transport").write_text(f"{relay_domain} smtp:[127.0.0.1]:{relay_port}\n")
    command = [POSTFIX, "-c", str(conf)]
    started = subprocess.run([*command, "start"], capture_output=True, text=True, check=False)
    instance = Postfix(root, port)
    try:
        assert started.returncode == 0, started.stderr + instance.log
        wait_until(lambda: port_open("127.0.0.1", port), 30, what="Postfix's smtpd")
        yield instance
    finally:
        subprocess.run([*command, "stop"], capture_output=True, check=False)
        wait_until(
            lambda: not (data / "master.lock").exists() or not _master_alive(root),
            30,
            what="Postfix to stop",
        )
        shutil.rmtree(root, ignore_errors=True)


def _master_alive(root: Path) -> bool:
    pid_file = root / "queue" / "pid" / "master.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
