"""Named scenarios: who the sandbox Meta user is, which Pages they hold, and
which misbehaviour the sandbox plays.

Add a scenario by calling :func:`register` with a :class:`Scenario`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADMIN_TASKS = ("ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MODERATE", "MANAGE")
NOT_ADMIN_TASKS = ("ANALYZE", "ADVERTISE")

USER_ID = "100090000000001"
USER_NAME = "Sari Sandbox"


@dataclass(frozen=True)
class PageSpec:
    """A Facebook Page the sandbox user has a role on."""

    id: str
    name: str
    tasks: tuple[str, ...] = ADMIN_TASKS
    ig_id: str | None = None
    ig_username: str | None = None
    category: str = "Shopping & retail"


@dataclass(frozen=True)
class Scenario:
    """One sandbox world. The flags are copied into the world on reset and can
    be changed afterwards through ``POST /_sandbox/flags``."""

    name: str
    description: str
    pages: tuple[PageSpec, ...]
    user_id: str = USER_ID
    user_name: str = USER_NAME
    declined_scopes: frozenset[str] = frozenset()
    flags: dict = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Add (or replace) a scenario in the registry."""
    SCENARIOS[scenario.name] = scenario
    return scenario


def get_scenario(name: str) -> Scenario:
    """Return the named scenario; ``KeyError`` when unknown."""
    return SCENARIOS[name]


def _page(n: int, name: str, *, ig: bool = True, tasks=ADMIN_TASKS) -> PageSpec:
    ig_id = f"178414000000{n:05d}" if ig else None
    username = name.lower().replace(" ", "_").replace("'", "") if ig else None
    return PageSpec(id=f"1100000000{n:05d}", name=name, tasks=tuple(tasks), ig_id=ig_id, ig_username=username)


register(
    Scenario(
        "one_page",
        "One admin Page with a linked Instagram Business account.",
        pages=(_page(1, "Toko Sari"),),
    )
)
register(
    Scenario(
        "several_pages",
        "Three admin Pages; the third has no Instagram account.",
        pages=(_page(1, "Toko Sari"), _page(2, "Sari Fashion"), _page(3, "Sari Kitchen", ig=False)),
    )
)
register(
    Scenario(
        "page_without_instagram",
        "One admin Page with no Instagram account linked.",
        pages=(_page(1, "Toko Sari", ig=False),),
    )
)
register(
    Scenario(
        "not_admin",
        "One Page where the user only has ANALYZE/ADVERTISE tasks.",
        pages=(_page(1, "Toko Teman", tasks=NOT_ADMIN_TASKS),),
    )
)
register(
    Scenario(
        "permission_declined",
        "One Page with Instagram; the consent page pre-unticks instagram_content_publish.",
        pages=(_page(1, "Toko Sari"),),
        declined_scopes=frozenset({"instagram_content_publish"}),
    )
)
register(
    Scenario(
        "token_expired",
        "One Page with Instagram; connecting works (the page token passes its first "
        "debug_token), then the page token is expired (190/463) for every later call.",
        pages=(_page(1, "Toko Sari"),),
        flags={"page_tokens_expire_after_check": True},
    )
)
register(
    Scenario(
        "throttled",
        "One Page with Instagram; the first call of each publishing kind is "
        "throttled once (code 32 for Pages, 80002 for Instagram).",
        pages=(_page(1, "Toko Sari"),),
        flags={"throttle_once": True},
    )
)
register(
    Scenario(
        "flaky",
        "One Page with Instagram; every 3rd publishing call answers 500 (code 2) and every 4th Graph call is slow.",
        pages=(_page(1, "Toko Sari"),),
        flags={"flaky_every": 3, "flaky_slow_every": 4},
    )
)
register(
    Scenario(
        "many_pages",
        "60 admin Pages (every 10th without Instagram): /me/accounts needs paging.",
        pages=tuple(_page(i, f"Toko Cabang {i:02d}", ig=(i % 10 != 0)) for i in range(1, 61)),
    )
)
register(
    Scenario(
        "burst",
        "100 admin Pages, each with Instagram: a benchmark's sellers each connect one of them.",
        pages=tuple(_page(i, f"Toko Ramai {i:03d}") for i in range(1, 101)),
    )
)
