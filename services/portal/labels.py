"""Human words for the domain's enums, shared by pages and read models."""

from __future__ import annotations

from tenants.models import LifecycleStage
from tenants.roles import Role

STAGE_LABELS = {
    LifecycleStage.PROSPECT: "Prospect",
    LifecycleStage.ONBOARDING: "Onboarding",
    LifecycleStage.ACTIVE: "Active",
    LifecycleStage.PAUSED: "Paused",
    LifecycleStage.CHURNED: "Churned",
}
# The verb on the button that moves a client into a stage.
STAGE_ACTIONS = {
    LifecycleStage.PROSPECT: "Back to prospect",
    LifecycleStage.ONBOARDING: "Start onboarding",
    LifecycleStage.ACTIVE: "Mark active",
    LifecycleStage.PAUSED: "Pause",
    LifecycleStage.CHURNED: "Mark churned",
}
ROLE_LABELS = {
    Role.AGENCY_OWNER: "Agency owner",
    Role.AGENCY_ADMIN: "Agency admin",
    Role.AGENCY_STAFF: "Agency staff",
    Role.CLIENT_OWNER: "Client owner",
    Role.CLIENT_MEMBER: "Client member",
}
