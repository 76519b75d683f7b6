from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django.db import models
from django.db.models import Q

# The model is bound where each queryset becomes a manager (directory.models), which this
# module cannot import: models imports it.
_M = TypeVar("_M", bound=models.Model)


class AgentQuerySet(models.QuerySet[_M, _M]):
    def active(self) -> AgentQuerySet[_M]:
        return self.filter(is_active=True)

    def for_account(self, account: object) -> AgentQuerySet[_M]:
        return self.filter(account=account)


class ApiTokenQuerySet(models.QuerySet[_M, _M]):
    def live(self) -> ApiTokenQuerySet[_M]:
        return self.filter(revoked_at__isnull=True)


class SenderRuleQuerySet(models.QuerySet[_M, _M]):
    def for_account(self, account: object) -> SenderRuleQuerySet[_M]:
        """The rules an account's operator sees and may delete: its agents' and its own."""
        return self.filter(account=account)

    def applying_to(self, agents: Iterable[Any]) -> SenderRuleQuerySet[_M]:
        """The rules that can decide mail to any of ``agents``: each agent's own, its
        account's, and the global (staff) ones; never another account's."""
        agents = list(agents)
        return self.filter(
            Q(agent__in=[a.pk for a in agents])
            | Q(agent__isnull=True, account__in={a.account_id for a in agents})
            | Q(account__isnull=True)
        )
