"""The FastAPI app: public pages (unsubscribe, view online), editor/admin UI, JSON API."""
