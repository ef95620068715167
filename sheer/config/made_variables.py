"""The variables a block makes from others: its `map`, `geo` and `split_clients` blocks, read together
so that a name made twice is nginx's error (`the duplicate "x" variable`)."""

from __future__ import annotations

from sheer.config.computed import Geo, Split
from sheer.config.geo import check_unique, geos_of
from sheer.config.maps import maps_of
from sheer.config.model import Map
from sheer.config.split_clients import splits_of
from sheer.config.tree import Block


def made_variables(block: Block, known: frozenset[str], prefixes: tuple[str, ...],
                   http: bool) -> tuple[tuple[Map, ...], tuple[Geo, ...], tuple[Split, ...]]:
    maps = maps_of(block, known, prefixes)
    geos = geos_of(block, known, prefixes, http)
    splits = splits_of(block, known, prefixes)
    check_unique((made.variable for made in maps), (*geos, *splits), known)
    return maps, geos, splits
