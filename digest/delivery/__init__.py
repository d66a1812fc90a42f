"""MIME and headers, transports (SMTP, maildir outbox), the delivery ledger and send_batch."""
