"""Runnable examples: FastAPI and aiohttp services and a resumable worker (see README)."""
