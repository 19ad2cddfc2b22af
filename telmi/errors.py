"""Domain errors. Services raise these; the web layer maps each to its HTTP status."""

from __future__ import annotations


class TelmiError(Exception):
    """An error a user can act on: a stable code, a French message, an HTTP status."""

    status = 400
    code = "bad_request"
    message = "Requête invalide."
    field: str | None = None  # the input field at fault, when there is one

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.message
        self.code = code or self.code
        super().__init__(self.message)

    @property
    def problems(self) -> list[tuple[str | None, str]]:
        """Every (field, message) at fault, the first one being this error's own: a form
        shows them all at once, each beside its field."""
        return [(self.field, self.message)]


class ValidationError(TelmiError):
    status = 422
    code = "invalid"
    message = "Données invalides."

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        others: tuple[ValidationError, ...] = (),
    ) -> None:
        super().__init__(message, code=code)
        self.field = field
        self.others = others

    @property
    def problems(self) -> list[tuple[str | None, str]]:
        return [(self.field, self.message), *((o.field, o.message) for o in self.others)]


class AuthenticationRequired(TelmiError):
    status = 401
    code = "unauthenticated"
    message = "Authentification requise."


class InvalidCredentials(TelmiError):
    status = 401
    code = "invalid_credentials"
    message = "Adresse e-mail ou mot de passe incorrect."


class Throttled(TelmiError):
    status = 429
    code = "throttled"
    message = "Trop de tentatives de connexion. Réessayez dans quelques minutes."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(TelmiError):
    status = 403
    code = "forbidden"
    message = "Vous n'avez pas accès à cette ressource."


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    message = "Jeton de sécurité du formulaire manquant ou invalide. Rechargez la page."


class NotFound(TelmiError):
    status = 404
    code = "not_found"
    message = "Ressource introuvable."


class Conflict(TelmiError):
    status = 409
    code = "conflict"
    message = "La ressource a changé entre-temps."


class MalformedBody(TelmiError):
    status = 400
    code = "malformed_json"
    message = "Corps de requête mal formé."


class UnsupportedMediaType(TelmiError):
    status = 415
    code = "unsupported_media_type"
    message = "Le corps doit être du JSON (Content-Type: application/json)."
