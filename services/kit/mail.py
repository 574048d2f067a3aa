"""Outgoing e-mail: SMTP when configured; always recorded in the local outbox table."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from typing import ClassVar

import anyio
from sqlalchemy import Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, col

from services.kit import jobs
from services.kit.models import TenantModel
from services.kit.types import UTCDateTime, utcnow
from services.settings import get_settings

DELIVER_TASK = "mail.deliver"


class OutboundEmail(TenantModel, table=True):
    """Every message the platform sends; the embedded default's outbox."""

    __tablename__ = "outbound_emails"
    __audited__: ClassVar[bool] = False
    __audit_exclude__: ClassVar[frozenset[str]] = frozenset({"body_text"})

    to_address: str = Field(max_length=320)
    subject: str = Field(max_length=300)
    body_text: str = Field(sa_type=Text)
    message_id: str = Field(max_length=200)
    status: str = Field(default="queued", max_length=20)  # queued | sent | stored | failed
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


async def recent(session: AsyncSession, limit: int) -> Sequence[OutboundEmail]:
    """The session's tenant's latest messages, newest first."""
    stmt = (
        select(OutboundEmail)
        .order_by(col(OutboundEmail.created_at).desc(), col(OutboundEmail.id).desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


def _send_smtp(msg: EmailMessage) -> None:
    s = get_settings()
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if s.smtp_security == "tls":
        smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=15, context=context)
    else:
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=15)
    with smtp:
        if s.smtp_security == "starttls":
            smtp.starttls(context=context)
        if s.smtp_username:
            smtp.login(s.smtp_username, s.smtp_password)
        smtp.send_message(msg)


async def send(
    session: AsyncSession,
    agency_id: uuid.UUID,
    *,
    to: str,
    subject: str,
    body: str,
    sender_name: str | None = None,
    sender_address: str | None = None,
) -> OutboundEmail:
    """Record one message and, with SMTP configured, queue its delivery (`mail.deliver`,
    services/worker.py), which runs once this transaction has committed: what the message
    points at (a reset or invitation link the caller just minted) works the moment the
    recipient has it, and a failed delivery is retried without redoing the caller's work.
    The sender is the agency's own name and address when it set them, else the platform's
    address under the agency's name."""
    settings = get_settings()
    default_name, default_address = parseaddr(settings.smtp_sender)
    sender = formataddr((sender_name or default_name, sender_address or default_address))
    row = OutboundEmail(
        agency_id=agency_id,
        to_address=to,
        subject=subject,
        body_text=body,
        message_id=make_msgid(domain="switchboard.local"),
        status="queued" if settings.smtp_host else "stored",
    )
    session.add(row)
    await session.flush()
    if settings.smtp_host:
        jobs.enqueue(session, DELIVER_TASK, agency_id, email_id=str(row.id), sender=sender)
    return row


def message_of(row: OutboundEmail, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.to_address
    msg["Subject"] = row.subject
    msg["Message-ID"] = row.message_id
    msg.set_content(row.body_text)
    return msg


async def deliver(session: AsyncSession, email_id: uuid.UUID, sender: str) -> None:
    """Send a queued message over SMTP (the `mail.deliver` task). Raises when the server
    cannot take it: the task retries. A message already sent is not sent again."""
    row = (
        await session.execute(select(OutboundEmail).where(col(OutboundEmail.id) == email_id))
    ).scalar_one_or_none()
    if row is None or row.status != "queued":
        return
    await anyio.to_thread.run_sync(_send_smtp, message_of(row, sender))
    row.status, row.sent_at = "sent", utcnow()
    await session.flush()
