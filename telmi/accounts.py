"""Users, passwords, browser sessions, login throttling and personal API tokens.

Secrets given to a client (session cookie, API token) are stored only as their SHA-256, so a
copy of the database opens no session. Passwords are argon2id, hashed off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import Field
from sqlalchemy import ColumnElement, bindparam, func, select, tuple_, update
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ClassManager, Session, make_transient_to_detached, selectinload

from telmi import audit
from telmi.context import Context
from telmi.db import Executor, Prepared
from telmi.errors import Conflict, NotFound, Throttled, ValidationError
from telmi.models import ApiToken, Facility, LoginAttempt, Role, Specialty, User, WebSession
from telmi.paging import DEFAULT_LIMIT, Key, Keyset, Page
from telmi.values import Body, luhn_valid, text

MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "telmi_"
SESSION_TOUCH_EVERY = timedelta(seconds=60)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_hasher = PasswordHasher()  # argon2id with the library's current recommended costs
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(None, verify)


def check_rpps(rpps: str) -> str:
    """RPPS numbers are 11 digits whose last one is a Luhn check digit."""
    if not (len(rpps) == 11 and rpps.isdigit() and luhn_valid(rpps)):
        raise ValidationError("Numéro RPPS invalide (11 chiffres, clé de Luhn).", field="rpps")
    return rpps


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"Le mot de passe doit compter au moins {MIN_PASSWORD_LENGTH} caractères.",
            field="password",
        )


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    full_name: str,
    role: Role | str,
    password: str,
    facility_finess: str | None = None,
    specialty_code: str | None = None,
    rpps: str | None = None,
    password_hash: str | None = None,
    now: datetime,
) -> User:
    """Create an account; `password_hash` lets a caller reuse a hash it already computed
    for the same password (bulk imports, tests), skipping one argon2 computation."""
    email = normalise_email(email)
    if not _EMAIL.match(email):
        raise ValidationError("Adresse e-mail invalide.", field="email")
    try:
        role = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationError(f"Rôle inconnu (attendu : {allowed}).", field="role") from None
    check_password(password)
    facility = specialty = None
    if role is Role.STAFF:
        if not facility_finess:
            raise ValidationError("Un compte établissement exige un FINESS.", field="facility")
        facility = await session.scalar(select(Facility).where(Facility.finess == facility_finess))
        if facility is None:
            raise ValidationError(
                f"Établissement FINESS {facility_finess} inconnu.", field="facility"
            )
    if role is Role.SPECIALIST:
        if not specialty_code:
            raise ValidationError("Un compte spécialiste exige une spécialité.", field="specialty")
        specialty = await session.scalar(select(Specialty).where(Specialty.code == specialty_code))
        if specialty is None:
            raise ValidationError(f"Spécialité {specialty_code} inconnue.", field="specialty")
    if rpps is not None:
        check_rpps(rpps)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"Un compte existe déjà pour {email}.", code="email_taken")
    user = User(
        email=email,
        full_name=full_name.strip() or email,
        role=role,
        facility=facility,
        specialty=specialty,
        rpps=rpps,
        password_hash=password_hash or await hash_password(password),
        created_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("Ce compte (e-mail ou RPPS) existe déjà.", code="user_exists") from None
    return user


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("Utilisateur introuvable.")
    return user


async def user_by_email(session: AsyncSession, email: str) -> User:
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"Aucun compte pour {normalise_email(email)}.")
    return user


async def list_users(session: AsyncSession) -> list[User]:
    query = (
        select(User)
        .options(selectinload(User.facility), selectinload(User.specialty))
        .order_by(User.role, User.email)
    )
    return list(await session.scalars(query))


# « Comptes » by role then e-mail (unique), a page read off `ix_users_role_email`.
USERS = Keyset("users", (str, str))


async def users_page(
    session: AsyncSession, *, after: Key | None = None, limit: int = DEFAULT_LIMIT
) -> Page[User]:
    """The accounts a page at a time: `limit + 1` users, then their facilities and
    specialties in one query each (for this page's users only)."""
    query = select(User).options(selectinload(User.facility), selectinload(User.specialty))
    if after is not None:
        query = query.where(tuple_(User.role, User.email) > tuple_(*after))
    query = query.order_by(User.role, User.email).limit(limit + 1)
    found = list(await session.scalars(query))
    return Page.of(found, limit, lambda u: (u.role.value, u.email))


async def disable_user(session: AsyncSession, user: User, *, now: datetime) -> None:
    """Disabling closes every door at once: sessions and tokens are revoked with the account."""
    user.is_active = False
    user.disabled_at = now
    await session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await audit.record(
        session, "user.disabled", actor=None, target_type="user", target_id=user.id, at=now
    )


# --- login ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    """Failed logins allowed in `window` before refusal: for one account from one address
    (the guesser), from one address over all accounts (the sprayer), and for one account
    from everywhere, much higher, so that someone elsewhere cannot lock a nurse out."""

    window: timedelta
    max_failures_pair: int
    max_failures_address: int
    max_failures_account: int


async def _recent_failures(
    session: AsyncSession, since: datetime, *conditions: ColumnElement[bool]
) -> tuple[int, datetime | None]:
    row = (
        await session.execute(
            select(func.count(), func.min(LoginAttempt.at)).where(
                *conditions, LoginAttempt.at >= since, LoginAttempt.succeeded.is_(False)
            )
        )
    ).one()
    return row[0], row[1]


async def authenticate(
    session: AsyncSession, ctx: Context, email: str, password: str, *, policy: LoginPolicy
) -> User | None:
    """The active user these credentials name, or None; every attempt is recorded.

    Raises Throttled before checking anything once the account from this address, this
    address, or (at a far higher count) the account has failed too often in the window, so
    guessing stays slow whichever the attacker varies, and a lock-out stays local.
    """
    email, now, address = normalise_email(email)[:254], ctx.now, ctx.address
    since = now - policy.window
    for conditions, limit in (
        ((LoginAttempt.email == email, LoginAttempt.address == address), policy.max_failures_pair),
        ((LoginAttempt.address == address,), policy.max_failures_address),
        ((LoginAttempt.email == email,), policy.max_failures_account),
    ):
        count, oldest = await _recent_failures(session, since, *conditions)
        if count >= limit:
            retry = int(((oldest or now) + policy.window - now).total_seconds()) + 1
            raise Throttled(retry_after=max(retry, 1))
    user = await session.scalar(select(User).where(User.email == email))
    # Hash even for unknown accounts so response time does not reveal which e-mails exist.
    ok = await verify_password(user.password_hash if user else _DUMMY_HASH, password)
    ok = ok and user is not None and user.is_active
    session.add(LoginAttempt(email=email, address=address, at=now, succeeded=ok))
    if not ok:
        return None
    assert user is not None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    return user


# --- browser sessions -------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


async def open_session(
    session: AsyncSession, ctx: Context, user: User, *, policy: SessionPolicy, user_agent: str = ""
) -> str:
    """A fresh session id at every login (no fixation); returns the cookie value. The
    context has no user yet: `user` is who just proved who they are."""
    token, now, address = secrets.token_urlsafe(32), ctx.now, ctx.address
    session.add(
        WebSession(
            id=sha256(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.absolute,
            address=address[:64],
            user_agent=user_agent[:300],
        )
    )
    await audit.record(session, "login", actor=user, address=address, at=now)  # user, not ctx
    return token


async def resolve_session(
    executor: Executor, token: str, *, now: datetime, policy: SessionPolicy
) -> tuple[WebSession, User] | None:
    """The live session behind a cookie and its active user, read on every page (one
    prepared statement: through an ORM session it cost more than the rest of a small page)."""
    row = await _SESSION_USER.first(executor, {"session_id": sha256(token)})
    if row is None:
        return None
    width = len(_SESSION_COLUMNS)
    web_session = _detached(
        WebSession,
        {key: value for (key, _), value in zip(_SESSION_COLUMNS, row[:width], strict=True)},
    )
    user = _detached(
        User, {key: value for (key, _), value in zip(_USER_COLUMNS, row[width:], strict=True)}
    )
    if (
        web_session.revoked_at is not None
        or web_session.expires_at <= now
        or web_session.last_seen_at + policy.idle <= now
        or not user.is_active
    ):
        return None
    return web_session, user


def session_needs_touch(web_session: WebSession, now: datetime) -> bool:
    return now - web_session.last_seen_at >= SESSION_TOUCH_EVERY


async def touch_session(session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.execute(
        update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now)
    )


async def revoke_session(session: AsyncSession, session_id: str, *, now: datetime) -> None:
    await session.execute(
        update(WebSession)
        .where(WebSession.id == session_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# --- API tokens -------------------------------------------------------------------------------


class NewToken(Body):
    name: text(100) = Field("", description="to recognise it in the list")  # type: ignore[valid-type]


async def create_token(session: AsyncSession, ctx: Context, new: NewToken) -> tuple[ApiToken, str]:
    """A new personal token of the caller; the clear value is returned once, never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=ctx.caller.id,
        name=new.name,
        token_hash=sha256(raw),
        prefix=raw[: len(TOKEN_PREFIX) + 6],
        created_at=ctx.now,
    )
    session.add(token)
    await session.flush()
    await audit.event(session, ctx, "token.created", target_type="api_token", target_id=token.id)
    return token, raw


# Built once, on the tables: this runs on every bearer-authenticated request, on a bare
# connection (no ORM session), and the user is built from the row.
_USER_COLUMNS = tuple((prop.key, prop.columns[0]) for prop in sa_inspect(User).column_attrs)
_TOKENS = ApiToken.__table__.c
_TOKEN_USER = Prepared(
    select(_TOKENS.revoked_at, _TOKENS.expires_at, *(column for _, column in _USER_COLUMNS))
    .join_from(ApiToken.__table__, User.__table__, User.__table__.c.id == _TOKENS.user_id)
    .where(_TOKENS.token_hash == bindparam("token_hash"))
)


_SESSION_COLUMNS = tuple(
    (prop.key, prop.columns[0]) for prop in sa_inspect(WebSession).column_attrs
)
_SESSION_USER = Prepared(
    select(*(column for _, column in _SESSION_COLUMNS), *(column for _, column in _USER_COLUMNS))
    .join_from(
        WebSession.__table__, User.__table__, User.__table__.c.id == WebSession.__table__.c.user_id
    )
    .where(WebSession.__table__.c.id == bindparam("session_id"))
)


T = TypeVar("T")
_MANAGERS: dict[type, ClassManager[Any]] = {
    User: sa_inspect(User).class_manager,
    WebSession: sa_inspect(WebSession).class_manager,
}


def _detached(cls: type[T], values: dict[str, Any]) -> T:
    """The object of a Core row, as a closed session would have left it (detached, loaded):
    its state set directly, not through the instrumented constructor (a third of the cost
    of resolving a token, on every request)."""
    instance = _MANAGERS[cls].new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    return cast(T, instance)


# How long this process trusts a token it has read without reading it again.
TOKEN_TRUST_SECONDS = 1.0


class TokenCache:
    """The users behind the tokens this process resolved in the last second.

    Without it every bearer request reads its token: a statement and a pool checkout, a
    tenth of a simple API request's CPU. A change to a user or a token committed in this
    process empties it at once (`_forget_on_commit`), so a token revoked or a user disabled
    here is refused from the next request on; a change made by another process (the CLI,
    another server) is seen within `seconds`. Refusals are not kept: an unknown token is
    read each time. `monotonic` measures how long an entry has been kept, not "now": a
    token's expiry is still checked against the request's instant on every hit."""

    def __init__(
        self,
        seconds: float = TOKEN_TRUST_SECONDS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        size: int = 10_000,
    ) -> None:
        self.seconds, self.monotonic, self.size = seconds, monotonic, size
        self.generation = 0  # moves at each forget: a read begun before it is not kept
        self._entries: dict[str, tuple[float, datetime | None, dict[str, Any]]] = {}

    def user(self, token_hash: str, now: datetime) -> User | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        kept_at, expires_at, values = entry
        if self.monotonic() - kept_at >= self.seconds or (
            expires_at is not None and expires_at <= now
        ):
            del self._entries[token_hash]
            return None
        return _detached(User, dict(values))  # a new object each request: never shared

    def keep(
        self, token_hash: str, expires_at: datetime | None, values: dict[str, Any], generation: int
    ) -> None:
        if generation != self.generation or self.seconds <= 0:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[token_hash] = (self.monotonic(), expires_at, values)

    def forget(self) -> None:
        self.generation += 1
        self._entries.clear()


TOKENS = TokenCache()
_ACCOUNTS_CHANGED = "telmi_accounts_changed"


@sa_event.listens_for(Session, "after_flush")
def _note_account_changes(session: Session, _context: Any) -> None:
    if any(isinstance(o, User | ApiToken) for o in (*session.dirty, *session.deleted)):
        session.info[_ACCOUNTS_CHANGED] = True


@sa_event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    if session.info.pop(_ACCOUNTS_CHANGED, False):
        TOKENS.forget()


@sa_event.listens_for(Session, "after_rollback")
def _nothing_changed(session: Session) -> None:
    session.info.pop(_ACCOUNTS_CHANGED, None)


async def resolve_token(executor: Executor, raw: str, *, now: datetime) -> User | None:
    """The active user behind a live token, read from the database (and kept in `TOKENS`
    for the next requests), so a revoked or expired token, or a disabled user, is refused."""
    return await _read_token(executor, sha256(raw), now)


async def _read_token(executor: Executor, token_hash: str, now: datetime) -> User | None:
    generation = TOKENS.generation
    row = await _TOKEN_USER.first(executor, {"token_hash": token_hash})
    if row is None:
        return None
    revoked_at, expires_at = row[0], row[1]
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        return None
    values = {key: value for (key, _), value in zip(_USER_COLUMNS, row[2:], strict=True)}
    if not values["is_active"]:
        return None
    TOKENS.keep(token_hash, expires_at, values, generation)
    return _detached(User, dict(values))


async def token_user(connect: Callable[[], Any], raw: str, *, now: datetime) -> User | None:
    """`resolve_token`, or the user this process resolved for the token in the last second
    (`TOKENS`): the connection is opened (`connect()`) only when the token must be read."""
    token_hash = sha256(raw)
    user = TOKENS.user(token_hash, now)
    if user is not None:
        return user
    async with connect() as conn:
        return await _read_token(conn, token_hash, now)


async def list_tokens(session: AsyncSession, user: User) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    return list(await session.scalars(query))


async def revoke_token(session: AsyncSession, ctx: Context, token_id: int) -> ApiToken:
    """Revoke a token; a user may revoke only their own (no user: the operator's CLI)."""
    token = await session.get(ApiToken, token_id)
    if token is None or (ctx.user is not None and token.user_id != ctx.user.id):
        raise NotFound(f"Jeton {token_id} introuvable.")
    if token.revoked_at is None:
        token.revoked_at = ctx.now
        await audit.event(
            session, ctx, "token.revoked", target_type="api_token", target_id=token.id
        )
    return token
