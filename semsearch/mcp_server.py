"""`semsearch mcp`: the library as Model Context Protocol tools over stdio, for assistants.

Each tool returns the JSON the HTTP API gives (both come from `semsearch.service`). Errors a user
can fix (an unknown paper or category, an empty question) come back as tool errors with the same
one-line message the CLI prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

INSTRUCTIONS = (
    "A local library of research papers on efficient large language models, placed in the taxonomy of "
    "the survey 'Efficient Large Language Models'. Search it in plain words, place a new paper in the "
    "taxonomy, find related work, read a paper, and see how a topic grew by year."
)


def build_server(*, index_dir: str | Path | None = None):
    """The MCP server over the index at `index_dir` (loaded now, followed as it is published)."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from semsearch.errors import SemsearchError
    from semsearch.service import Service

    service = Service(index_dir=index_dir)
    service.follow()
    server = MCPServer("semsearch", instructions=INSTRUCTIONS, log_level="WARNING")

    def answer(call, *args, **kwargs) -> Any:
        try:
            return call(*args, **kwargs)
        except SemsearchError as err:
            raise ToolError(str(err)) from None

    @server.tool()
    def search(
        question: str,
        k: int = 10,
        year_from: int | None = None,
        year_to: int | None = None,
        category: str | None = None,
        taxonomy: str | None = None,
    ) -> dict:
        """Papers for a question in plain words, best first (a topic, a problem, or one paper described).
        `category` keeps papers under a taxonomy node (its path or last part, e.g. "KV-Cache Optimization");
        `taxonomy` names one added from a curated list (default: the survey's)."""
        k = max(1, min(k, 100))
        return answer(
            service.search, question, k, year_from=year_from, year_to=year_to, category=category, taxonomy=taxonomy
        )

    @server.tool()
    def classify(title: str, abstract: str, taxonomy: str | None = None) -> dict:
        """Where a paper belongs in the taxonomy (the survey's, or `taxonomy` added from a list): three
        suggestions, a confidence, whether it is in scope at all, and the closest labelled papers."""
        return answer(service.classify, title, abstract, taxonomy)

    @server.tool()
    def related(id: str, k: int = 10) -> dict:  # noqa: A002 - the tool's argument name is part of its contract
        """Related work for a paper in the library (an arXiv id or URL)."""
        return answer(service.related, id, max(1, min(k, 100)))

    @server.tool()
    def paper(id: str) -> dict:  # noqa: A002
        """One paper whole: title, authors, abstract, links, categories and BibTeX."""
        return answer(service.paper, id)

    @server.tool()
    def taxonomy() -> list[dict]:
        """The taxonomy as a tree, with how many papers sit under each node."""
        return answer(service.taxonomy)

    @server.tool()
    def trends(category: list[str]) -> dict:
        """Papers per year under up to three taxonomy nodes, to compare how topics grew."""
        return answer(service.trends, category[:3])

    return server


def serve_stdio(*, index_dir: str | Path | None = None) -> None:
    build_server(index_dir=index_dir).run("stdio")
