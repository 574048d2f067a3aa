"""Server-rendered agency console and client portal (built out by the portal work)."""

from fastapi import FastAPI


def mount_portal(app: FastAPI) -> None:
    return None
