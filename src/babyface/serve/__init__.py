"""``babyface serve``: a web page and JSON API around a trained bundle (FastAPI + uvicorn)."""
