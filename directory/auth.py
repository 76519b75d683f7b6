"""Bearer-token authentication for the API, over directory.ApiToken."""

from __future__ import annotations

from typing import Any, cast

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from directory.models import Agent, ApiToken
from directory.services import token_authenticate


class TokenUser:
    """What request.user is for an API call: the agent or operator behind the token."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.agent: Agent | None = token.agent
        self.account = token.account
        self.pk = f"{token.kind}:{token.prefix}"

    @property
    def is_operator(self) -> bool:
        return self.token.kind == ApiToken.Kind.OPERATOR

    def __str__(self) -> str:
        return self.agent.agent_id if self.agent else f"operator {self.token.prefix}"


def token_user(request: Request) -> TokenUser:
    """``request.user`` in a view behind IsAgent or IsOperator: BearerTokenAuthentication
    (the API's only authentication) set it. The stubs type it as Django's user model."""
    return cast(TokenUser, request.user)


class BearerTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[TokenUser, ApiToken] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword or len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        token = token_authenticate(plaintext)
        if token is None:
            raise exceptions.AuthenticationFailed("The token is not valid, or was revoked.")
        return TokenUser(token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class IsAgent(BasePermission):
    """An agent token. Operator tokens get 404-free 403s elsewhere; here they are refused."""

    message = "This endpoint needs an agent token."

    def has_permission(self, request: Request, view: Any) -> bool:
        user: object = request.user  # the stubs type it as Django's user model
        return isinstance(user, TokenUser) and user.agent is not None


class IsOperator(BasePermission):
    message = "This endpoint needs an operator token."

    def has_permission(self, request: Request, view: Any) -> bool:
        user: object = request.user
        return isinstance(user, TokenUser) and user.is_operator
