"""The old home of identity's use cases, kept so that existing callers still import from it.

Callers should move to the modules that now hold each name (this module will go once the
portal, the OpenID provider, SCIM, agencies, the CLI and the demo import from them):

* `apikeys`         API_KEY_PREFIX, make_api_key, agency_of_api_key, resolve_api_key,
                    create_api_key, revoke_api_key
* `users`           MIN_PASSWORD_LENGTH, normalize_email, principal_for_user, create_user,
                    check_password_strength, add_membership, change_membership,
                    remove_membership, update_user
* `invitations`     INVITATION_TTL, IssuedInvitation, invitation_url, invite,
                    revoke_invitation, open_invitation, accept_invitation
* `throttle`        THROTTLE_WINDOW, THRESHOLDS, FIRST_LOCK, MAX_LOCK, refuse_if_throttled,
                    count_failure
* `devices`         DEVICE_TTL, issue_device_token, trusted_device
* `sessions`        LAST_USED_RESOLUTION, open_session, SIGNED_OUT, REVOKED, ROTATED, REPLACED,
                    IMPERSONATION_ENDED, SessionEndHook, on_sessions_ended, end_sessions,
                    rotate_session, revoke_user_sessions
* `signin`          sign_in, resolve_browser_session, end_session_by_token, sign_out
* `password_reset`  RESET_TTL, RESETS_PER_HOUR, password_reset_url, request_password_reset,
                    issue_password_reset, mint_password_reset_url, open_password_reset,
                    reset_password

Nothing is defined here: add new code to those modules, never to this one.
"""

from __future__ import annotations

from services.identity.apikeys import (
    API_KEY_PREFIX,
    agency_of_api_key,
    create_api_key,
    make_api_key,
    resolve_api_key,
    revoke_api_key,
)
from services.identity.devices import DEVICE_TTL, issue_device_token, trusted_device
from services.identity.invitations import (
    INVITATION_TTL,
    IssuedInvitation,
    accept_invitation,
    invitation_url,
    invite,
    open_invitation,
    revoke_invitation,
)
from services.identity.password_reset import (
    RESET_TTL,
    RESETS_PER_HOUR,
    issue_password_reset,
    mint_password_reset_url,
    open_password_reset,
    password_reset_url,
    request_password_reset,
    reset_password,
)
from services.identity.sessions import (
    IMPERSONATION_ENDED,
    LAST_USED_RESOLUTION,
    REPLACED,
    REVOKED,
    ROTATED,
    SIGNED_OUT,
    SessionEndHook,
    end_sessions,
    on_sessions_ended,
    open_session,
    revoke_user_sessions,
    rotate_session,
)
from services.identity.signin import (
    end_session_by_token,
    resolve_browser_session,
    sign_in,
    sign_out,
)
from services.identity.throttle import (
    FIRST_LOCK,
    MAX_LOCK,
    THRESHOLDS,
    THROTTLE_WINDOW,
    count_failure,
    refuse_if_throttled,
)
from services.identity.users import (
    MIN_PASSWORD_LENGTH,
    add_membership,
    change_membership,
    check_password_strength,
    create_user,
    normalize_email,
    principal_for_user,
    remove_membership,
    update_user,
)

__all__ = [
    "API_KEY_PREFIX",
    "DEVICE_TTL",
    "FIRST_LOCK",
    "IMPERSONATION_ENDED",
    "INVITATION_TTL",
    "LAST_USED_RESOLUTION",
    "MAX_LOCK",
    "MIN_PASSWORD_LENGTH",
    "REPLACED",
    "RESETS_PER_HOUR",
    "RESET_TTL",
    "REVOKED",
    "ROTATED",
    "SIGNED_OUT",
    "THRESHOLDS",
    "THROTTLE_WINDOW",
    "IssuedInvitation",
    "SessionEndHook",
    "accept_invitation",
    "add_membership",
    "agency_of_api_key",
    "change_membership",
    "check_password_strength",
    "count_failure",
    "create_api_key",
    "create_user",
    "end_session_by_token",
    "end_sessions",
    "invitation_url",
    "invite",
    "issue_device_token",
    "issue_password_reset",
    "make_api_key",
    "mint_password_reset_url",
    "normalize_email",
    "on_sessions_ended",
    "open_invitation",
    "open_password_reset",
    "open_session",
    "password_reset_url",
    "principal_for_user",
    "refuse_if_throttled",
    "remove_membership",
    "request_password_reset",
    "reset_password",
    "resolve_api_key",
    "resolve_browser_session",
    "revoke_api_key",
    "revoke_invitation",
    "revoke_user_sessions",
    "rotate_session",
    "sign_in",
    "sign_out",
    "trusted_device",
    "update_user",
]
