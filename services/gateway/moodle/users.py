"""The Moodle sites allowed in: HTTP Basic users from ``MOODLE_BACKEND_USERS``.

The setting holds comma-separated entries ``user:password[@tenant]``:

- ``user``: what the Moodle site sends as its user name (Moodle allows
  letters, digits, ``_`` and ``-``);
- ``password``: in clear, or hashed in one of two forms: ``<algorithm>:<salt>:
  <hex digest>``, the digest of the salt text followed by the password (the
  form of the reference backend's ``gen-passwd``, e.g. ``sha256:...``), or
  ``pbkdf2:<algorithm>:<iterations>$<salt>$<hex digest>`` (PBKDF2-HMAC of the
  password with the salt text, as Werkzeug writes it);
- ``@tenant``: the tenant whose datasets, jobs and models the user's Moodle
  models become (a tenant id such as ``t1a2b3c4d5e6``); without it, the
  default tenant (``DEFAULT_TENANT``, the tenant of local use), which is
  refused when authentication is on (``ADMIN_API_KEY`` set).

``python -m services.gateway.moodle.users <user> [tenant]`` asks for a
password and prints an entry with it hashed.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import re
import secrets
import sys
from dataclasses import dataclass, field

from shared.settings import Settings
from shared.tenants import TENANT_ID_PATTERN

ENTRY_SEPARATOR = ","
PBKDF2 = "pbkdf2"
PBKDF2_ITERATIONS = 600_000
SALT_BYTES = 16
USER_PATTERN = re.compile(r"[^,:\s]{1,100}")

MISSING_CREDENTIALS = (
    "The Moodle site sent no user or no password: set them in Site administration "
    "> Plugins > Machine learning backend settings > Python machine learning backend"
)
WRONG_CREDENTIALS = "The user or password sent by the Moodle site is wrong"


class UsersSettingError(ValueError):
    """MOODLE_BACKEND_USERS holds an entry that cannot be used."""


class Refused(Exception):
    """Credentials missing or wrong; the message is safe to show the caller."""


@dataclass(frozen=True)
class MoodleUser:
    name: str
    tenant: str
    secret: str = field(repr=False)

    def accepts(self, password: str) -> bool:
        if self.secret.startswith(f"{PBKDF2}:"):
            return _pbkdf2_matches(self.secret, password)
        if ":" in self.secret:
            algorithm, salt, digest = self.secret.split(":", 2)
            computed = hashlib.new(algorithm, (salt + password).encode()).hexdigest()
            return hmac.compare_digest(computed, digest.lower())
        return hmac.compare_digest(self.secret.encode(), password.encode())


def parse_users(
    text: str, default_tenant: str, tenant_required: bool = False
) -> dict[str, MoodleUser]:
    """The users of the setting by name; UsersSettingError names a bad entry.

    ``tenant_required`` (authentication on: ``ADMIN_API_KEY`` set) refuses an
    entry without ``@tenant``: the default tenant is served only with
    authentication off, so its models would be out of every API key's reach.
    """
    users: dict[str, MoodleUser] = {}
    for position, entry in enumerate(text.split(ENTRY_SEPARATOR), 1):
        entry = entry.strip()
        if not entry:
            continue
        user = _parse_entry(entry, position, default_tenant)
        if tenant_required and user.tenant == default_tenant:
            raise UsersSettingError(
                f"MOODLE_BACKEND_USERS entry {position} (user {user.name!r}): with "
                "ADMIN_API_KEY set, name the user's tenant, as in "
                "'user:password@t1a2b3c4d5e6'; the default tenant "
                f"{default_tenant!r} is served only with authentication off"
            )
        if user.name in users:
            raise UsersSettingError(
                f"MOODLE_BACKEND_USERS entry {position}: user {user.name!r} is "
                "listed twice"
            )
        users[user.name] = user
    return users


def users_of(settings: Settings) -> dict[str, MoodleUser]:
    """The users ``settings`` name, a tenant required when authentication is on."""
    return parse_users(
        settings.moodle_backend_users,
        settings.default_tenant,
        tenant_required=settings.admin_api_key is not None,
    )


def authenticate(header: str | None, users: dict[str, MoodleUser]) -> MoodleUser:
    """The user of an ``Authorization: Basic`` header, or Refused."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise Refused(MISSING_CREDENTIALS)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Refused(WRONG_CREDENTIALS) from None
    name, separator, password = decoded.partition(":")
    if not separator or not name or not password:
        raise Refused(MISSING_CREDENTIALS)
    user = users.get(name)
    if user is None or not user.accepts(password):
        raise Refused(WRONG_CREDENTIALS)
    return user


def hashed_entry(name: str, password: str, tenant: str | None = None) -> str:
    """A setting entry for ``name`` with the password hashed with PBKDF2-SHA256."""
    salt = secrets.token_hex(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS
    ).hex()
    entry = f"{name}:{PBKDF2}:sha256:{PBKDF2_ITERATIONS}${salt}${digest}"
    return f"{entry}@{tenant}" if tenant else entry


def _parse_entry(entry: str, position: int, default_tenant: str) -> MoodleUser:
    where = f"MOODLE_BACKEND_USERS entry {position}"
    name, separator, secret = entry.partition(":")
    if not separator or not USER_PATTERN.fullmatch(name) or not secret:
        raise UsersSettingError(
            f"{where}: expected 'user:password' or 'user:password@tenant', with a "
            "user name of letters, digits, '_' or '-'"
        )
    tenant = default_tenant
    if "@" in secret:
        secret, tenant = secret.rsplit("@", 1)
        if tenant != default_tenant and not TENANT_ID_PATTERN.fullmatch(tenant):
            raise UsersSettingError(
                f"{where} (user {name!r}): the tenant must be a tenant id such as "
                f"'t1a2b3c4d5e6' or {default_tenant!r}; received {tenant!r}"
            )
    _check_secret(secret, f"{where} (user {name!r})")
    return MoodleUser(name=name, tenant=tenant, secret=secret)


def _check_secret(secret: str, where: str) -> None:
    if not secret:
        raise UsersSettingError(f"{where}: the password is empty")
    if secret.startswith(f"{PBKDF2}:"):
        match = re.fullmatch(r"pbkdf2:(\w+):(\d+)\$([^$]+)\$([0-9a-fA-F]+)", secret)
        if match is None or match.group(1) not in hashlib.algorithms_available:
            raise UsersSettingError(
                f"{where}: a PBKDF2 password reads "
                "'pbkdf2:<algorithm>:<iterations>$<salt>$<hex digest>'"
            )
        return
    if ":" not in secret:
        return
    parts = secret.split(":")
    if (
        len(parts) != 3
        or parts[0] not in hashlib.algorithms_guaranteed
        or parts[0].startswith("shake")
        or not re.fullmatch(r"[0-9a-fA-F]+", parts[2])
    ):
        raise UsersSettingError(
            f"{where}: a hashed password reads '<algorithm>:<salt>:<hex digest>' with "
            f"an algorithm of {sorted(hashlib.algorithms_guaranteed)!r} (shake aside)"
        )


def _pbkdf2_matches(secret: str, password: str) -> bool:
    _, algorithm, rest = secret.split(":", 2)
    iterations, salt, digest = rest.split("$", 2)
    computed = hashlib.pbkdf2_hmac(
        algorithm, password.encode(), salt.encode(), int(iterations)
    ).hex()
    return hmac.compare_digest(computed, digest.lower())


def main(arguments: list[str]) -> int:
    if not 1 <= len(arguments) <= 2:
        print(
            "usage: python -m services.gateway.moodle.users <user> [tenant]",
            file=sys.stderr,
        )
        return 2
    password = getpass.getpass(f"password of {arguments[0]}: ")
    print(
        hashed_entry(
            arguments[0], password, arguments[1] if len(arguments) > 1 else None
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
