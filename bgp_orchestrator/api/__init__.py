"""The HTTP API (FastAPI). Ray-free: Serve hosts it, and so can plain uvicorn."""
