"""What every agent-facing mail endpoint shares: the agent behind the token, and the
scoped lookup that makes another agent's message indistinguishable from a missing one."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.views import APIView

from assmbl.errors import NotFound
from directory.auth import IsAgent, token_user
from directory.models import Agent
from mail.models import Message


class AgentAPIView(APIView):
    """Base view for endpoints that act on the calling agent's own mailbox."""

    permission_classes = [IsAgent]

    def agent(self, request: Request) -> Agent:
        agent = token_user(request).agent
        assert agent is not None  # IsAgent
        return agent


def message_for_agent_or_404(agent: Agent, message_id: str) -> Message:
    message = Message.objects.for_agent(agent).select_related("agent").filter(pk=message_id).first()
    if message is None:
        raise NotFound("No such message.", code="message_not_found")
    return message
