"""Selection of items since the last issue, and the issue lifecycle."""
