"""The broker errors the rest of the system sees. Every adapter maps its broker's
own error shapes onto these; ``permanent`` alone decides retry versus fail."""

from algotrader.exceptions import ApplicationError, Conflict, NotFound


class BrokerError(ApplicationError):
    code = "broker_error"
    status = 502
    message = "The broker could not complete the request."
    permanent = False

    def __init__(self, message: str | None = None, *, broker_error_type: str = "", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.broker_error_type = broker_error_type


class BrokerAuthError(BrokerError):
    code = "broker_auth_failed"
    status = 400
    message = "The broker refused these credentials, or the session token has expired."
    permanent = True


class OrderRejected(BrokerError):
    """A refusal that will not go away by itself: margin, invalid symbol, market closed, bad input."""

    code = "order_rejected"
    status = 400
    message = "The broker rejected the order."
    permanent = True


class OrderBusy(BrokerError):
    """A change refused only because the broker is still processing the order (placed or
    modified a moment ago): nothing took effect, and the same change is taken once it rests."""

    code = "order_busy"
    status = 409
    message = "The broker is still processing this order; try the change again in a moment."
    permanent = False


class RateLimited(BrokerError):
    code = "broker_rate_limited"
    status = 503
    message = "The broker is rate limiting requests."
    permanent = False


class BrokerUnavailable(BrokerError):
    """The request certainly did not take effect (connection refused, DNS, a 5xx for a read), so a retry is safe."""

    code = "broker_unavailable"
    status = 503
    message = "The broker could not be reached."
    permanent = False


class AmbiguousOutcome(BrokerError):
    """An order request was sent and no answer came back: the order may exist at the broker,
    so it must be looked up by its tag before anything is retried."""

    code = "broker_outcome_unknown"
    status = 504
    message = "The broker did not answer: the order may or may not have been placed."
    permanent = False


# Account errors: what the user did or may do with a stored broker account.


class BrokerAccountNotFound(NotFound):
    code = "broker_account_not_found"
    message = "No broker account with this id."


class BrokerAccountLabelTaken(ApplicationError):
    code = "label_taken"
    status = 400
    message = "You already have a broker account with this label."


class BrokerLoginNotSupported(ApplicationError):
    code = "login_not_supported"
    status = 400
    message = "Only Kite accounts sign in at the broker; a paper account needs no login."


class BrokerAccountDisabled(Conflict):
    code = "broker_account_disabled"
    message = "This broker account has been disabled by an operator."


class BrokerAccountInUse(Conflict):
    code = "broker_account_in_use"
    message = "A strategy is running or holding a position on this account: stop it, or let it exit, first."


class OrderUpdateForbidden(ApplicationError):
    """A broker's order update (a Kite postback) whose checksum no account's secret matches:
    forged, or for an account we do not have. Nothing is changed."""

    code = "checksum_invalid"
    status = 403
    message = "The order update's checksum does not match."


# The one-tap Kite login's refusals: each is shown to the browser Kite sent back, as a page.


class KiteLoginFailed(ApplicationError):
    code = "kite_login_failed"
    status = 400
    message = "The Kite login could not be completed: start it again from the app."


class KiteLoginStateInvalid(KiteLoginFailed):
    code = "login_state_invalid"
    message = "This login link is not valid: start the Kite login again from the app."


class KiteLoginStateExpired(KiteLoginFailed):
    code = "login_state_expired"
    message = "This login link has expired: start the Kite login again from the app."


class KiteLoginStateUsed(KiteLoginFailed):
    code = "login_state_used"
    message = "This login link has already been used: start the Kite login again from the app."


class KiteLoginForeign(KiteLoginFailed):
    """A login link completed in a browser signed in as another user of ours."""

    code = "login_state_foreign"
    message = "This login was started by another user: sign in as that user, or start your own login from the app."


class KiteLoginCancelled(KiteLoginFailed):
    code = "login_cancelled"
    message = "The Kite login was cancelled: start it again from the app when you are ready."
