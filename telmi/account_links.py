"""Accounts administration: invitations, password resets, the password policy, role and
facility changes, disabling and enabling, and a user's change of their own password.

An invitation or a reset is a one-time link sent by mail (`notify.enqueue`): only the
SHA-256 of its token is stored, it works once, before it expires (72 h for an invitation,
2 h for a reset). An invited account exists disabled, without a usable password, until its
link is used. Every admin change is an audit event with before and after, never a password
or a token.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from telmi import accounts, audit, notify
from telmi.context import Context
from telmi.errors import Conflict, NotFound, TelmiError, Throttled, ValidationError
from telmi.models import (
    AccountLink,
    ApiToken,
    AuditEvent,
    Facility,
    Role,
    Specialty,
    User,
    WebSession,
)
from telmi.values import Body, Finess, Rpps, text

INVITATION_VALID = timedelta(hours=72)
RESET_VALID = timedelta(hours=2)
INVITATION, RESET = "invitation", "reset"
LINK_PATH = "/compte/lien#"  # the token in the fragment: never sent in a request line
COMMON_PASSWORDS = Path(__file__).parent / "data" / "common-passwords.txt"
# « Mot de passe oublié ? »: requests from one address in the window before refusal, and
# reset mails one account receives in the window (beyond: silently none, same answer).
FORGOT_WINDOW = timedelta(minutes=15)
FORGOT_MAX_PER_ADDRESS = 5
FORGOT_MAX_MAILS_PER_ACCOUNT = 3
# An unusable hash: argon2 refuses it, so no password opens an invited account.
_NO_PASSWORD = "!invited"


class LinkUnusable(TelmiError):
    status = 410
    code = "link_unusable"
    message = (
        "Ce lien n'est plus valable : il a déjà servi ou il a expiré. "
        "Demandez un nouveau lien à votre administrateur ou depuis « Mot de passe oublié ? »."
    )


# --- password policy --------------------------------------------------------------------------


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def check_new_password(password: str, confirm: str, *, field: str = "password") -> None:
    """At least 12 characters, not a common password, typed twice the same."""
    try:
        accounts.check_password(password)
    except ValidationError as exc:
        raise ValidationError(exc.message, field=field) from None
    if password.strip().lower() in common_passwords():
        raise ValidationError(
            "Ce mot de passe est trop courant : choisissez-en un autre.", field=field
        )
    if password != confirm:
        raise ValidationError("Les deux mots de passe ne sont pas identiques.", field="confirm")


# --- inputs -----------------------------------------------------------------------------------


class Invitation(Body):
    email: text(254, required=True)  # type: ignore[valid-type]
    full_name: text(200, required=True)  # type: ignore[valid-type]
    role: Role
    facility: Finess | None = Field(None, description="FINESS of a staff member's facility")
    specialty: text(64) = Field("", description="a specialist's specialty code")  # type: ignore[valid-type]
    rpps: Rpps | None = None


class UserEdit(Body):
    role: Role
    facility: Finess | None = None
    specialty: text(64) = ""  # type: ignore[valid-type]


class NewPassword(Body):
    password: str = Field(max_length=200)
    confirm: str = Field(max_length=200)


class PasswordChange(NewPassword):
    current_password: str = Field(max_length=200)


# --- links ------------------------------------------------------------------------------------


def _snapshot(user: User) -> dict[str, Any]:
    return {
        "role": user.role.value,
        "facility_id": user.facility_id,
        "specialty_id": user.specialty_id,
        "is_active": user.is_active,
    }


async def _issue(
    session: AsyncSession, ctx: Context, user: User, purpose: str, *, public_url: str
) -> AccountLink:
    """A new link for `user`, mailed to them; their earlier unused links stop working."""
    now = ctx.now
    await session.execute(
        update(AccountLink)
        .where(
            AccountLink.user_id == user.id,
            AccountLink.used_at.is_(None),
            AccountLink.expires_at > now,
        )
        .values(expires_at=now)
    )
    token = secrets.token_urlsafe(32)
    valid = INVITATION_VALID if purpose == INVITATION else RESET_VALID
    link = AccountLink(
        user_id=user.id,
        purpose=purpose,
        token_hash=accounts.sha256(token),
        created_by_id=ctx.user.id if ctx.user else None,
        created_at=now,
        expires_at=now + valid,
    )
    session.add(link)
    await session.flush()
    url = public_url.rstrip("/") + LINK_PATH + token
    if purpose == INVITATION:
        subject = "Votre accès à Telmi"
        body = (
            f"Bonjour {user.full_name},\n\n"
            "Un compte Telmi, la plateforme régionale de télémédecine, a été ouvert pour vous.\n"
            f"Choisissez votre mot de passe en ouvrant ce lien (valable 72 heures, une fois) :\n"
            f"{url}\n\n"
            "Si vous n'attendiez pas ce message, ignorez-le."
        )
    else:
        subject = "Votre mot de passe Telmi"
        body = (
            f"Bonjour {user.full_name},\n\n"
            "Une réinitialisation de votre mot de passe Telmi a été demandée.\n"
            f"Choisissez un nouveau mot de passe en ouvrant ce lien (valable 2 heures, une fois) :\n"
            f"{url}\n\n"
            "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : "
            "votre mot de passe actuel reste valable."
        )
    await notify.enqueue(
        session,
        user_id=user.id,
        kind=f"compte-{purpose}",
        subject=subject,
        body=body,
        dedupe_key=f"account-link:{link.id}",
        now=now,
    )
    return link


async def invite(session: AsyncSession, ctx: Context, new: Invitation, *, public_url: str) -> User:
    """Create the account, disabled and without a usable password, and mail its link."""
    user = await accounts.create_user(
        session,
        email=new.email,
        full_name=new.full_name,
        role=new.role,
        password=secrets.token_urlsafe(24),  # never hashed: replaced by the unusable one
        password_hash=_NO_PASSWORD,
        facility_finess=new.facility,
        specialty_code=new.specialty or None,
        rpps=new.rpps,
        now=ctx.now,
    )
    user.is_active = False
    await session.flush()
    await _issue(session, ctx, user, INVITATION, public_url=public_url)
    await audit.event(
        session,
        ctx,
        "user.invited",
        target_type="user",
        target_id=user.id,
        before={},
        after={**_snapshot(user), "email": user.email, "rpps": user.rpps},
    )
    return user


async def send_reset(session: AsyncSession, ctx: Context, user_id: int, *, public_url: str) -> User:
    """An admin sends a user a password-reset link (an invited user gets a new invitation)."""
    user = await accounts.get_user(session, user_id)
    if user.disabled_at is not None:
        raise Conflict("Ce compte est désactivé : réactivez-le d'abord.", code="user_disabled")
    purpose = RESET if user.is_active else INVITATION
    await _issue(session, ctx, user, purpose, public_url=public_url)
    await audit.event(session, ctx, f"user.{purpose}_sent", target_type="user", target_id=user.id)
    return user


async def usable_link(
    session: AsyncSession, token: str, *, now: datetime
) -> tuple[AccountLink, User]:
    """The link this token opens and its user, or LinkUnusable (unknown, used, expired)."""
    row = (
        await session.execute(
            select(AccountLink, User)
            .join(User, User.id == AccountLink.user_id)
            .where(AccountLink.token_hash == accounts.sha256(token))
        )
    ).one_or_none()
    if row is None:
        raise LinkUnusable()
    link, user = row
    if link.used_at is not None or link.expires_at <= now or user.disabled_at is not None:
        raise LinkUnusable()
    return link, user


async def use_link(session: AsyncSession, ctx: Context, token: str, new: NewPassword) -> User:
    """Set the password the link's owner chose; the account is active, the link spent."""
    link, user = await usable_link(session, token, now=ctx.now)
    check_new_password(new.password, new.confirm)
    spent = await session.execute(
        update(AccountLink)
        .where(AccountLink.id == link.id, AccountLink.used_at.is_(None))
        .values(used_at=ctx.now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise LinkUnusable()
    user.password_hash = await accounts.hash_password(new.password)
    user.is_active = True
    await _revoke_sessions(session, user, now=ctx.now)
    await audit.record(
        session,
        "user.password_set",
        actor=user,
        address=ctx.address,
        target_type="user",
        target_id=user.id,
        at=ctx.now,
        purpose=link.purpose,
    )
    return user


async def _revoke_sessions(
    session: AsyncSession, user: User, *, now: datetime, keep: str | None = None
) -> None:
    conditions = [WebSession.user_id == user.id, WebSession.revoked_at.is_(None)]
    if keep is not None:
        conditions.append(WebSession.id != keep)
    await session.execute(update(WebSession).where(*conditions).values(revoked_at=now))


async def forgot_password(
    session: AsyncSession, ctx: Context, email: str, *, public_url: str
) -> None:
    """« Mot de passe oublié ? »: the same outcome whether the address exists or not; a
    reset link only for an active account. Throttled by address (Throttled before
    anything is written), and a few mails per account per window at most."""
    since = ctx.now - FORGOT_WINDOW
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(AuditEvent.at)).where(
                AuditEvent.action == "password.forgot",
                AuditEvent.address == ctx.address,
                AuditEvent.at >= since,
            )
        )
    ).one()
    if count >= FORGOT_MAX_PER_ADDRESS:
        retry = int(((oldest or ctx.now) + FORGOT_WINDOW - ctx.now).total_seconds()) + 1
        raise Throttled(
            retry_after=max(retry, 1),
            message="Trop de demandes de réinitialisation. Réessayez dans quelques minutes.",
        )
    email = accounts.normalise_email(email)[:254]
    user = await session.scalar(select(User).where(User.email == email))
    sent = False
    if user is not None and user.is_active:
        recent = await session.scalar(
            select(func.count()).where(
                AccountLink.user_id == user.id,
                AccountLink.purpose == RESET,
                AccountLink.created_by_id.is_(None),
                AccountLink.created_at >= since,
            )
        )
        if (recent or 0) < FORGOT_MAX_MAILS_PER_ACCOUNT:
            await _issue(session, ctx, user, RESET, public_url=public_url)
            sent = True
    await audit.event(
        session,
        ctx,
        "password.forgot",
        target_type="user" if user else "",
        target_id=user.id if user else "",
        sent=sent,
    )


# --- administration ---------------------------------------------------------------------------


async def list_users(session: AsyncSession) -> list[User]:
    return await accounts.list_users(session)


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.scalar(
        select(User)
        .where(User.id == user_id)
        .options(selectinload(User.facility), selectinload(User.specialty))
    )
    if user is None:
        raise NotFound("Utilisateur introuvable.")
    return user


async def update_user(session: AsyncSession, ctx: Context, user_id: int, edit: UserEdit) -> User:
    """Change a user's role and facility or specialty (staff: a facility, specialist: a
    specialty; the other roles have neither)."""
    user = await get_user(session, user_id)
    if user.id == ctx.caller.id and edit.role is not Role.ADMIN:
        raise Conflict("Vous ne pouvez pas retirer votre propre rôle d'administrateur.")
    before = _snapshot(user)
    facility = specialty = None
    if edit.role is Role.STAFF:
        if not edit.facility:
            raise ValidationError("Un compte établissement exige un FINESS.", field="facility")
        facility = await session.scalar(select(Facility).where(Facility.finess == edit.facility))
        if facility is None:
            raise ValidationError(
                f"Établissement FINESS {edit.facility} inconnu.", field="facility"
            )
    if edit.role is Role.SPECIALIST:
        if not edit.specialty:
            raise ValidationError("Un compte spécialiste exige une spécialité.", field="specialty")
        specialty = await session.scalar(select(Specialty).where(Specialty.code == edit.specialty))
        if specialty is None:
            raise ValidationError(f"Spécialité {edit.specialty} inconnue.", field="specialty")
    user.role = edit.role
    user.facility = facility
    user.specialty = specialty
    await session.flush()
    after = _snapshot(user)
    if after != before:
        await audit.event(
            session,
            ctx,
            "user.updated",
            target_type="user",
            target_id=user.id,
            before=before,
            after=after,
        )
    return user


async def disable(session: AsyncSession, ctx: Context, user_id: int) -> User:
    """Disable an account: its sessions and API tokens are revoked with it."""
    user = await get_user(session, user_id)
    if user.id == ctx.caller.id:
        raise Conflict("Vous ne pouvez pas désactiver votre propre compte.")
    if user.disabled_at is not None:
        return user
    before = _snapshot(user)
    await accounts.disable_user(session, user, now=ctx.now)
    await session.execute(
        update(AccountLink)
        .where(AccountLink.user_id == user.id, AccountLink.used_at.is_(None))
        .where(AccountLink.expires_at > ctx.now)
        .values(expires_at=ctx.now)
    )
    await audit.event(
        session,
        ctx,
        "user.disable",
        target_type="user",
        target_id=user.id,
        before=before,
        after=_snapshot(user),
    )
    return user


async def enable(session: AsyncSession, ctx: Context, user_id: int) -> User:
    """Enable a disabled account again (an invited one stays waiting for its password)."""
    user = await get_user(session, user_id)
    if user.disabled_at is None:
        return user
    before = _snapshot(user)
    user.disabled_at = None
    user.is_active = user.password_hash != _NO_PASSWORD
    await session.flush()
    await audit.event(
        session,
        ctx,
        "user.enable",
        target_type="user",
        target_id=user.id,
        before=before,
        after=_snapshot(user),
    )
    return user


def status_of(user: User) -> str:
    if user.disabled_at is not None:
        return "désactivé"
    if not user.is_active:
        return "invité"
    return "actif"


async def active_tokens(session: AsyncSession, user_id: int) -> int:
    return (
        await session.scalar(
            select(func.count()).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        )
        or 0
    )


# --- one's own password -----------------------------------------------------------------------


async def change_password(
    session: AsyncSession, ctx: Context, change: PasswordChange, *, keep_session: str | None
) -> None:
    """The signed-in user changes their password; their other sessions are closed."""
    user = await session.get(User, ctx.caller.id)
    if user is None:
        raise NotFound("Utilisateur introuvable.")
    if not await accounts.verify_password(user.password_hash, change.current_password):
        raise ValidationError("Mot de passe actuel incorrect.", field="current_password")
    check_new_password(change.password, change.confirm)
    user.password_hash = await accounts.hash_password(change.password)
    await _revoke_sessions(session, user, now=ctx.now, keep=keep_session)
    await audit.event(session, ctx, "user.password_changed", target_type="user", target_id=user.id)
