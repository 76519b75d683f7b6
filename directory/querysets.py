from __future__ import annotations

from django.db import models


class AgentQuerySet(models.QuerySet):
    def active(self) -> AgentQuerySet:
        return self.filter(is_active=True)

    def for_account(self, account: object) -> AgentQuerySet:
        return self.filter(account=account)


class ApiTokenQuerySet(models.QuerySet):
    def live(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)
