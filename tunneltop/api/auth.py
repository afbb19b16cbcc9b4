"""Credentials, held so they cannot leak: no ``repr``, ``str`` or error message ever shows the secret."""

from __future__ import annotations

from typing import Literal, NoReturn

Scheme = Literal["token", "key"]


class Credentials:
    """An API token (sent as Bearer) or a legacy email + global API key pair."""

    __slots__ = ("_email", "_secret", "scheme", "source")

    def __init__(self, scheme: Scheme, secret: str, *, email: str | None = None, source: str = "") -> None:
        # HTTP headers carry ASCII only: anything else would crash the HTTP client with a traceback.
        if not secret or any(ch.isspace() or not ch.isprintable() or not ch.isascii() for ch in secret):
            # Said without the value: it may be the secret itself.
            raise ValueError(
                f"the credential from {source or 'configuration'} is empty or has spaces, control characters or "
                "non-ASCII characters (a pasted quote or dash?)"
            )
        if email is not None and not (email.isascii() and email.isprintable()):
            raise ValueError(f"the email from {source or 'configuration'} has control or non-ASCII characters")
        self.scheme: Scheme = scheme
        self.source = source
        self._secret = secret
        self._email = email

    @classmethod
    def token(cls, token: str, source: str = "") -> Credentials:
        return cls("token", token.strip(), source=source)

    @classmethod
    def global_key(cls, email: str, key: str, source: str = "") -> Credentials:
        return cls("key", key.strip(), email=email.strip(), source=source)

    def headers(self) -> dict[str, str]:
        if self.scheme == "token":
            return {"Authorization": f"Bearer {self._secret}"}
        return {"X-Auth-Email": self._email or "", "X-Auth-Key": self._secret}

    def scrub(self, text: str) -> str:
        """Remove the secret from a text that might have picked it up (belt and braces for error paths)."""
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def identity(self, base_url: str) -> str:
        """Who Cloudflare counts requests against, for the budget shared across processes: the token (hashed
        before it names anything; two tokens of one user are told apart, which errs on the generous side) or
        the global key's email. Never shown, logged or stored as it is."""
        who = self._secret if self.scheme == "token" else (self._email or "")
        return f"{self.scheme}\0{who}\0{base_url.rstrip('/')}"

    def describe(self) -> str:
        kind = "API token" if self.scheme == "token" else "email + global API key"
        return f"{kind} from {self.source}" if self.source else kind

    def __repr__(self) -> str:
        return f"Credentials(scheme={self.scheme!r}, source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("credentials are not picklable")
