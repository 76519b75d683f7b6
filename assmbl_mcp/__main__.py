"""``python -m assmbl_mcp``: the same as the ``assmbl-mcp`` console script."""

from __future__ import annotations

from assmbl_mcp.stdio import main

main()
