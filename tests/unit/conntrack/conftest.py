"""Fixtures for the conntrack unit tests: a table factory with a seeded RNG
and an event recorder. No timing assertions anywhere: time is an argument."""

from __future__ import annotations

import random
from typing import Any, Callable

import pytest

from conntrack import ConnTrack, ConntrackConfig, Event

EXT = "198.51.100.1"


class Recorder:
    """Event hook that keeps (kind, session id, time, reason)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_ct(recorder: Recorder) -> Callable[..., ConnTrack]:
    """make_ct(**config_overrides) -> ConnTrack with events going to ``recorder``."""

    def factory(seed: int = 1, clock: Any = None, **overrides: Any) -> ConnTrack:
        config = ConntrackConfig(external_ip=EXT, **overrides)
        kwargs: dict[str, Any] = {"on_event": recorder, "rng": random.Random(seed)}
        if clock is not None:
            kwargs["clock"] = clock
        return ConnTrack(config, **kwargs)

    return factory
