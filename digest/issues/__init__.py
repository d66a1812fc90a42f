"""The stored issue: compose (items since the last issue), its lifecycle, its view, freezing
it once, previews and proofs."""
