"""factory-boy factories for the models tests need in bulk."""

from __future__ import annotations

import factory
from django.utils import timezone

from directory.models import Account, Agent
from mail.models import Message


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account
        django_get_or_create = ["name"]

    name = factory.Sequence(lambda n: f"account-{n}")


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    agent_id = factory.Sequence(lambda n: f"agent{n}")
    account = factory.SubFactory(AccountFactory)
    display_name = factory.Faker("name")


class MessageFactory(factory.django.DjangoModelFactory):
    """An indexed inbound message with no raw object; for API reads, not raw downloads."""

    class Meta:
        model = Message

    agent = factory.SubFactory(AgentFactory)
    direction = Message.Direction.INBOUND
    from_header = factory.LazyAttribute(lambda o: f"Sender <{o.sender}>")
    sender = factory.Sequence(lambda n: f"person{n}@example.com")
    to = factory.LazyAttribute(lambda o: [o.agent.address])
    subject = factory.Sequence(lambda n: f"Message number {n}")
    body_preview = factory.Faker("sentence")
    received_at = factory.LazyFunction(timezone.now)
    internet_message_id = factory.Sequence(lambda n: f"<m{n}@example.com>")
    thread_id = factory.Sequence(lambda n: f"thr_{n:026d}")
    size = 1000
