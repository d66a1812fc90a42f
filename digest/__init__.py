"""The digest service: collect news, compose issues, render once, deliver to every subscriber."""

__version__ = "0.1.0"
