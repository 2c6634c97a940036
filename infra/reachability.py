"""The error every client of a server raises when the server does not answer at its configured address."""

from __future__ import annotations

from typing import ClassVar


class ServerUnreachable(RuntimeError):
    """A server dagbridge needs did not answer at its address; ``str()`` is the one line a command prints.

    A ``RuntimeError``, as the clients' own connection errors are: code that retries those (the
    bridge waiting for its servers) retries this too. Subclasses name the server and its setting.
    """

    server: ClassVar[str]
    setting: ClassVar[str]

    def __init__(self, address: str, reason: BaseException | str) -> None:
        self.address = address
        # The clients' messages can span lines (aiokafka, the Temporal core's transport errors).
        self.reason = " ".join(str(reason).split())
        super().__init__(
            f"cannot reach {self.server} at {address} ({self.reason}): start it there or set {self.setting}"
        )
