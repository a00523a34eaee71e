"""Dashboard accounts: supervisors, operators and admins sign in with a username and password.

Passwords are hashed with Argon2id (argon2-cffi), with the parameters OWASP's Password Storage
Cheat Sheet recommends (19 MiB, 2 passes, 1 lane): a memory-hard hash, so a stolen table costs
an attacker memory as well as time for every guess, and cheap enough for a sign-in on a small
server. The hash string carries its parameters, so they can be raised later: an old hash is
upgraded at the next sign-in (`check_needs_rehash`).

Lock-out: after LOGIN_MAX_FAILURES wrong passwords in a row an account refuses every password,
the right one included, until `locked_until` (LOGIN_LOCKOUT_MINUTES later). The count is kept
in the account's row and moved by one UPDATE per failure, so failures on every worker add up.
A success resets it. Sign-in is also slowed per client address (gateway.throttle), which
stops one client trying one password on many accounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session, selectinload

from gateway.access import existing_operator, existing_teams
from gateway.config import Settings
from gateway.models import Account, ApiRole, AuditEvent

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 200  # a longer "password" is a denial of service on the hash
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._@-]{1,99}")
ACCOUNT_ROLES = (ApiRole.OPERATOR, ApiRole.SUPERVISOR, ApiRole.ADMIN)

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@cache
def _unknown_account_hash() -> str:
    """Verified against when no such account exists, so that an unknown username takes as
    long as a wrong password and does not tell which usernames exist."""
    return _hasher.hash("no such account: a password nobody has")


class AccountError(ValueError):
    """An account cannot be created or changed as asked; the message says why."""


def normal_username(username: str) -> str:
    return username.strip().lower()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password: str, username: str) -> None:
    """AccountError for a password too short, too long, or the username itself."""
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AccountError(f"a password has at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise AccountError(f"a password has at most {PASSWORD_MAX_LENGTH} characters")
    if normal_username(password) == username or len(set(password)) < 4:
        raise AccountError("that password is too easy to guess: use a few unrelated words")


def find_account(session: Session, username: str) -> Account | None:
    """The account as the database holds it now (another worker may have just locked or
    disabled it), with its teams and operator."""
    return session.scalar(
        select(Account)
        .where(Account.username == normal_username(username))
        .options(selectinload(Account.teams), selectinload(Account.operator))
        .execution_options(populate_existing=True)
    )


def _audit(session: Session, actor: str, action: str, account: Account, now: datetime) -> None:
    session.add(
        AuditEvent(
            at=now,
            actor=actor,
            action=action,
            subject_type="account",
            subject_id=str(account.id),
            detail={
                "username": account.username,
                "role": account.role.value,
                "teams": [t.name for t in account.teams],
                "operator": account.operator.external_id if account.operator else None,
            },
        )
    )


def create_account(
    session: Session,
    username: str,
    password: str,
    role: ApiRole,
    *,
    now: datetime,
    actor: str,
    name: str | None = None,
    teams: list[str] | None = None,
    operator: str | None = None,
) -> Account:
    """A new account, audited. A supervisor names their teams, an operator their operator's
    external id; both must exist (AccountError, or access.UnknownName, otherwise)."""
    username = normal_username(username)
    teams = [t.strip() for t in teams or [] if t.strip()]
    if not USERNAME_PATTERN.fullmatch(username):
        raise AccountError(
            "a username is 2 to 100 characters: letters a-z, digits and . _ @ - "
            "(it starts with a letter or digit)"
        )
    if role not in ACCOUNT_ROLES:
        raise AccountError("an account is an operator's, a supervisor's or an admin's")
    if role is ApiRole.SUPERVISOR and not teams:
        raise AccountError("a supervisor account needs --team (one or more): it sees those teams")
    if role is not ApiRole.SUPERVISOR and teams:
        raise AccountError(f"--team is for supervisor accounts; a {role.value} has no teams")
    if role is ApiRole.OPERATOR and not operator:
        raise AccountError("an operator account needs --operator EXTERNAL_ID: it sees only theirs")
    if role is not ApiRole.OPERATOR and operator:
        raise AccountError(f"--operator is for operator accounts, not {role.value} accounts")
    check_password(password, username)
    if session.scalar(select(Account.id).where(Account.username == username)) is not None:
        raise AccountError(f"an account named {username!r} exists already")
    account = Account(
        username=username,
        name=name,
        password_hash=hash_password(password),
        role=role,
        teams=existing_teams(session, list(dict.fromkeys(teams))),
        operator=existing_operator(session, operator) if operator else None,
        created_at=now,
        password_changed_at=now,
        failed_logins=0,
    )
    session.add(account)
    session.flush()
    _audit(session, actor, "account.create", account, now)
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(
        session.scalars(
            select(Account)
            .options(selectinload(Account.teams), selectinload(Account.operator))
            .order_by(Account.username)
        )
    )


def _existing(session: Session, username: str) -> Account:
    account = find_account(session, username)
    if account is None:
        raise AccountError(f"no account named {normal_username(username)!r} (see: user list)")
    return account


def disable_account(session: Session, username: str, actor: str, now: datetime) -> Account:
    """The account signs in no more and its open sessions end at once; audited."""
    account = _existing(session, username)
    if account.disabled_at is None:
        account.disabled_at = now
        _audit(session, actor, "account.disable", account, now)
    return account


def enable_account(session: Session, username: str, actor: str, now: datetime) -> Account:
    account = _existing(session, username)
    if account.disabled_at is not None:
        account.disabled_at = None
        account.failed_logins, account.locked_until = 0, None
        _audit(session, actor, "account.enable", account, now)
    return account


def reset_password(
    session: Session, username: str, password: str, actor: str, now: datetime
) -> Account:
    """A new password; lifts a lock-out and ends every session signed in with the old one."""
    account = _existing(session, username)
    check_password(password, account.username)
    account.password_hash = hash_password(password)
    account.password_changed_at = now
    account.failed_logins, account.locked_until = 0, None
    _audit(session, actor, "account.password_reset", account, now)
    return account


class SignInResult(StrEnum):
    SIGNED_IN = "signed_in"
    WRONG = "wrong"  # unknown username, wrong password or disabled: not told apart
    LOCKED = "locked"


@dataclass(frozen=True)
class SignIn:
    result: SignInResult
    account: Account | None = None
    locked_until: datetime | None = None  # LOCKED: when a password is taken again


def sign_in(
    session: Session, username: str, password: str, settings: Settings, now: datetime
) -> SignIn:
    """Check a username and password, counting failures towards the lock-out. The caller
    commits whatever the result: the failure count must survive a refused request."""
    account = find_account(session, username)
    password = password[:PASSWORD_MAX_LENGTH]
    if account is None or account.disabled_at is not None:
        _verify(_unknown_account_hash(), password)
        return SignIn(SignInResult.WRONG)
    if account.locked_until is not None and account.locked_until > now:
        return SignIn(SignInResult.LOCKED, locked_until=account.locked_until)
    if not _verify(account.password_hash, password):
        return _failed(session, account, settings, now)
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    account.failed_logins, account.locked_until, account.last_login_at = 0, None, now
    return SignIn(SignInResult.SIGNED_IN, account)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _failed(session: Session, account: Account, settings: Settings, now: datetime) -> SignIn:
    """One more failure, counted in one statement (concurrent failures all count); the one
    that reaches the limit locks the account and starts the count again."""
    reaches = Account.failed_logins + 1 >= settings.login_max_failures
    until = now + timedelta(minutes=settings.login_lockout_minutes)
    session.execute(
        update(Account)
        .where(Account.id == account.id)
        .values(
            failed_logins=case((reaches, 0), else_=Account.failed_logins + 1),
            locked_until=case((reaches, until), else_=Account.locked_until),
        )
    )
    session.refresh(account, ["failed_logins", "locked_until"])
    if account.locked_until is not None and account.locked_until > now:
        _audit(session, "sign-in", "account.locked", account, now)
        return SignIn(SignInResult.LOCKED, locked_until=account.locked_until)
    return SignIn(SignInResult.WRONG)


def count_accounts(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Account)) or 0
