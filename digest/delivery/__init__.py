"""MIME and headers, transports (SMTP, maildir outbox), the delivery ledger and send_batch, and
the one-off mail a sign-up confirmation is."""
