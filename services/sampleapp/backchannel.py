"""The sample app's memory of back-channel logouts (OpenID Connect Back-Channel Logout 1.0).

The app's sessions are signed cookies, so a logout token cannot delete them: the app
remembers which sessions the agency ended instead, and a cookie of an ended session is no
session any more. A logout token with a `sid` ends the session of that sign-in at the agency
(every cookie whose ID token carries that `sid`); one with only a `sub` ends every session of
that person that began before it. Identifiers of tokens already used (`jti`) are remembered
until the token expires, so a replayed token is refused.

In memory, for one process, as the sample it is: entries are kept for `KEEP_SECONDS` (no
session of the app outlives its ID token, at most a day) and pruned as new ones arrive.
"""

from __future__ import annotations

import threading
import time
from typing import Any

KEEP_SECONDS = 86_400


class LogoutRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # the app may serve from several threads
        self._sids: dict[str, float] = {}  # sid -> forget after
        self._subs: dict[str, tuple[float, float]] = {}  # sub -> (logged out at, forget after)
        self._jtis: dict[str, float] = {}  # jti -> forget after

    def _prune(self, now: float) -> None:
        for table in (self._sids, self._jtis):
            for key in [k for k, until in table.items() if until <= now]:
                del table[key]
        for key in [k for k, (_, until) in self._subs.items() if until <= now]:
            del self._subs[key]

    def record(self, claims: dict[str, Any]) -> bool:
        """Remember a verified logout token. False: its `jti` was used before (a replay)."""
        now = time.time()
        with self._lock:
            self._prune(now)
            jti = str(claims["jti"])
            if jti in self._jtis:
                return False
            self._jtis[jti] = max(float(claims["exp"]), now) + 120
            sid, sub = claims.get("sid"), claims.get("sub")
            if isinstance(sid, str) and sid:
                self._sids[sid] = now + KEEP_SECONDS
            elif isinstance(sub, str) and sub:
                self._subs[sub] = (now, now + KEEP_SECONDS)
            return True

    def ended(self, claims: dict[str, Any]) -> bool:
        """Has the agency ended the session these ID-token claims belong to?"""
        sid, sub = claims.get("sid"), claims.get("sub")
        with self._lock:
            if isinstance(sid, str) and sid in self._sids:
                return True
            if isinstance(sub, str) and sub in self._subs:
                began = claims.get("iat")
                logged_out_at = self._subs[sub][0]
                return not isinstance(began, int | float) or began <= logged_out_at
        return False
