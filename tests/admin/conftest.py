from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from assmbl.groups import MODERATOR


@pytest.fixture
def moderator(db: Any) -> User:
    user = User.objects.create_user("mod", password="mod-pass-123", is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATOR))
    return user


@pytest.fixture
def moderator_client(moderator: User) -> Client:
    client = Client()
    client.force_login(moderator)
    return client


@pytest.fixture
def superuser_client(db: Any) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "root-pass-123")
    client = Client()
    client.force_login(user)
    return client
