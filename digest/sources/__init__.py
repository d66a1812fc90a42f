"""Fetch, parse (feeds and HTML listing pages), clean (text, dates, summaries) and collect items."""
