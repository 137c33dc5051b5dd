"""The error tree and what each branch means for retries.

``SyncError``
  ``TransientError``   the network, a 429/5xx, a taken lease: retried in the worker, then by the
                       queue (visibility timeout), then poison-queued and notified.
  ``PermanentError``   retrying cannot help: recorded, notified and acknowledged.
    ``SpecError``          the spec cannot be parsed, has external ``$ref``s, fails validation.
    ``SpecNotNamedError``  only an event can name the spec (a blob prefix without ``blobName``).
    ``BlockedError``       the breaking-change policy refused the change.
    ``TargetError``        the platform refused the write (4xx) or the read-back did not match.
    ``SecretError``        a secret is missing or access is denied (names vault + secret, never value).
    ``UnsafeUrlError``     an outbound URL points at a non-public address or a disallowed scheme.
    ``SpecNotStagedError`` a signed spec URL could not be downloaded when its run was planned.
  ``ConfigError``      the sync map or an app setting is wrong: HTTP answers 500 with the key path,
                       the planner raises so Event Grid retries and dead-letters instead of losing it.

Every message names what failed and where; none carries a secret.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the service raises on purpose."""

    transient = False

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class TransientError(SyncError):
    transient = True

    def __init__(
        self, message: str, *, where: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, where=where)
        self.retry_after = retry_after


class PermanentError(SyncError):
    pass


class ServerFault(PermanentError):
    """Permanent, but ours, not the caller's: a storage service refusing the app (a role not
    yet granted, a firewall), or a stored row it cannot read. An HTTP caller gets a 500, not a
    400 that says its request was wrong, and Event Grid retries a webhook delivery it refused
    with one (a 400 is never retried: the event was dead-lettered or lost)."""


class StorageError(ServerFault):
    """A storage service answered a request of ours with a non-transient error."""


class SpecError(PermanentError):
    pass


class SpecNotNamedError(PermanentError):
    """The spec source cannot tell which document to read without an event naming it (a blob
    source with a prefix and no ``blobName``): a drift check then keeps to the recorded spec."""


class BlockedError(PermanentError):
    pass


class TargetError(PermanentError):
    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        status: int | None = None,
        code: str | None = None,
        tracking_id: str | None = None,
    ) -> None:
        super().__init__(message, where=where)
        self.status = status
        self.code = code
        self.tracking_id = tracking_id


class SecretError(PermanentError):
    pass


class UnsafeUrlError(PermanentError):
    pass


class SpecNotStagedError(PermanentError):
    """A caller's signed spec URL could not be downloaded when its run was planned
    (``sync.staging``): nothing was queued, and the same URL will not do better on a retry."""


class LeaseTakenError(TransientError):
    pass


class NotificationPendingError(TransientError):
    """A run is complete and another caller claimed its card moments ago without having sent
    it yet: asking again later (the queue's retry) either finds it sent or takes the claim
    over, so a caller that died between the fan-in and the card does not leave the run
    without one."""


class ConfigError(SyncError):
    """The sync map or an app setting is invalid; ``path`` is the key path (``apis.x.targets[0]``)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message, where=path)
        self.path = path
