from algotrader.exceptions import ApplicationError, NotFound


class InvalidCredentials(ApplicationError):
    code = "invalid_credentials"
    status = 401
    message = "Email or password is wrong."


class AccountLocked(ApplicationError):
    code = "account_locked"
    status = 429
    message = "Too many failed logins: this account is locked for a while. Try again later."


class InvalidToken(ApplicationError):
    code = "token_invalid"
    status = 401
    message = "The token is invalid, expired or already used."


class SessionNotFound(NotFound):
    message = "No such session (or it has ended already)."
