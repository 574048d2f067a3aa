"""The client lifecycle: which stage a client may move to from which (a rule of the client
record, not of the tenancy kernel, which only holds the stage column)."""

from __future__ import annotations

from tenants.models import LifecycleStage

# Allowed lifecycle moves. Churned clients can be won back through onboarding.
LIFECYCLE_TRANSITIONS: dict[LifecycleStage, frozenset[LifecycleStage]] = {
    LifecycleStage.PROSPECT: frozenset({LifecycleStage.ONBOARDING, LifecycleStage.CHURNED}),
    LifecycleStage.ONBOARDING: frozenset(
        {LifecycleStage.ACTIVE, LifecycleStage.PROSPECT, LifecycleStage.CHURNED}
    ),
    LifecycleStage.ACTIVE: frozenset({LifecycleStage.PAUSED, LifecycleStage.CHURNED}),
    LifecycleStage.PAUSED: frozenset({LifecycleStage.ACTIVE, LifecycleStage.CHURNED}),
    LifecycleStage.CHURNED: frozenset({LifecycleStage.ONBOARDING}),
}
