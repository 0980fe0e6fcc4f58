"""The two roots of blame: the miner's fault, or ours."""


class SubmissionError(Exception):
    """The submission is invalid. The message is shown to the miner as the reason."""

    def __init__(self, reason: str, *, log_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


class InfrastructureError(Exception):
    """Something on the validator's side failed (Docker, Redis, disk, GPU): retry, don't blame."""
