"""Fetch, parse (feeds and HTML listing pages), normalise and collect items."""
