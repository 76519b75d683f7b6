"""An MCP server for Assmbl Mail: an agent's mail tools for any MCP client.

``assmbl-mcp`` (``assmbl_mcp.stdio``) serves one agent over stdio, configured by
``AGENTMAIL_API_BASE_URL`` and ``AGENTMAIL_TOKEN``; ``assmbl_mcp.http:app`` serves streamable
HTTP, each request with its own bearer token. Both are thin layers over ``agentmail_client``.
"""

from __future__ import annotations
