"""GEO commands against a real redis-server: scores, positions, distances and searches byte for byte.

Runs on a fresh (RESP2) connection and after ``HELLO 3`` (coordinates are
doubles there).  Searches without ASC/DESC are compared too, so the cells
searched and their order must be redis-server's.  A hypothesis test then
adds random points and compares random searches.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_wire import Address, assert_same_replies, side_by_side

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


SICILY = ("13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")

CORPUS: list[tuple[str, ...]] = [
    ("FLUSHALL",),
    # GEOADD
    ("GEOADD", "Sicily", *SICILY),
    ("GEOADD", "Sicily", *SICILY),
    ("ZRANGE", "Sicily", "0", "-1", "WITHSCORES"),
    ("GEOADD", "Sicily", "NX", "13.5", "38.2", "Palermo", "12.758489", "38.788135", "edge1"),
    ("GEOADD", "Sicily", "XX", "CH", "13.5", "38.2", "Palermo", "12.758489", "38.788135", "edge2"),
    ("GEOADD", "Sicily", "CH", "13.361389", "38.115556", "Palermo", "17.241510", "38.788135", "edge2"),
    ("GEOADD", "Sicily", "XX", "NX", "13.5", "38.2", "Palermo"),
    ("GEOADD", "Sicily", "ch", "nx", "13.5", "38.2", "Palermo"),
    ("GEOADD", "Sicily", "13.5", "38.2"),
    ("GEOADD", "Sicily", "13.5", "38.2", "a", "1"),
    ("GEOADD", "Sicily", "CH", "CH", "CH"),
    ("GEOADD", "Sicily", "NX", "XX", "CH"),
    ("GEOADD", "Sicily", "181", "38.2", "bad"),
    ("GEOADD", "Sicily", "13", "85.06", "bad"),
    ("GEOADD", "Sicily", "-180.5", "-86", "bad"),
    ("GEOADD", "Sicily", "x", "38.2", "bad"),
    ("GEOADD", "Sicily", "13", "nan", "bad"),
    ("GEOADD", "Sicily", "13", "", "bad"),
    ("GEOADD", "Sicily", "13", "38", "ok", "13", "99", "bad"),
    ("ZCARD", "Sicily"),
    ("GEOADD", "limits", "180", "85.05112878", "ne", "-180", "-85.05112878", "sw", "0", "0", "zero"),
    ("GEOADD", "limits", "-0", "-0", "negzero", "179.9999999", "-85.0511287", "se", "1e-10", "1e-10", "tiny"),
    ("ZRANGE", "limits", "0", "-1", "WITHSCORES"),
    ("GEOPOS", "limits", "ne", "sw", "zero", "negzero", "se", "tiny"),
    ("GEOHASH", "limits", "ne", "sw", "zero", "negzero", "se", "tiny", "missing"),
    ("GEODIST", "limits", "ne", "sw"),
    ("GEODIST", "limits", "ne", "sw", "km"),
    ("GEODIST", "limits", "zero", "tiny", "ft"),
    # GEOPOS / GEOHASH / GEODIST
    ("GEOPOS", "Sicily", "Palermo", "Catania", "NonExisting"),
    ("GEOPOS", "Sicily"),
    ("GEOPOS", "nokey", "a", "b"),
    ("GEOHASH", "Sicily", "Palermo", "Catania", "NonExisting"),
    ("GEOHASH", "Sicily"),
    ("GEOHASH", "nokey", "a"),
    ("GEODIST", "Sicily", "Palermo", "Catania"),
    ("GEODIST", "Sicily", "Palermo", "Catania", "km"),
    ("GEODIST", "Sicily", "Palermo", "Catania", "MI"),
    ("GEODIST", "Sicily", "Palermo", "Catania", "Ft"),
    ("GEODIST", "Sicily", "Palermo", "Catania", "m"),
    ("GEODIST", "Sicily", "Palermo", "Palermo"),
    ("GEODIST", "Sicily", "Foo", "Bar"),
    ("GEODIST", "Sicily", "Palermo", "Bar"),
    ("GEODIST", "nokey", "Palermo", "Catania"),
    ("GEODIST", "nokey", "Palermo", "Catania", "yards"),
    ("GEODIST", "Sicily", "Palermo", "Catania", "yards"),
    ("GEODIST", "Sicily", "Palermo", "Catania", "km", "extra"),
    ("ZADD", "plain", "1", "a", "4503599627370495", "b", "-5", "c", "1.5", "d"),
    ("GEOPOS", "plain", "a", "b", "d"),
    ("GEOHASH", "plain", "a", "b", "d"),
    ("GEODIST", "plain", "a", "b"),
    ("SET", "str", "x"),
    ("GEOADD", "str", "13", "38", "a"),
    ("GEOPOS", "str", "a"),
    ("GEOHASH", "str", "a"),
    ("GEODIST", "str", "a", "b"),
    ("GEORADIUS", "str", "15", "37", "200", "km"),
    ("GEORADIUS", "str", "x", "37", "200", "km"),
    ("GEOSEARCH", "str", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "str", "BOGUS"),
    ("GEORADIUSBYMEMBER", "str", "a", "200", "km"),
    ("GEOSEARCHSTORE", "dst", "str", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"),
    # GEORADIUS
    ("GEORADIUS", "Sicily", "15", "37", "200", "km"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "ASC"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "DESC"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHDIST"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHCOORD"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHHASH"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "WITHDIST", "WITHCOORD", "WITHHASH", "ASC"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "withcoord", "withdist", "withhash", "desc"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "1"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "1", "DESC"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "2", "ANY"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "1", "ANY", "ASC"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "ANY"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "0"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "-1"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT", "x"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "COUNT"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "BOGUS"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "parsecs"),
    ("GEORADIUS", "Sicily", "15", "37", "-1", "km"),
    ("GEORADIUS", "Sicily", "15", "37", "x", "km"),
    ("GEORADIUS", "Sicily", "15", "37", "0", "km"),
    ("GEORADIUS", "Sicily", "15", "37", "0", "km", "WITHDIST"),
    ("GEORADIUS", "Sicily", "15.087269", "37.502669", "0", "km", "WITHDIST"),
    ("GEORADIUS", "Sicily", "200", "37", "200", "km"),
    ("GEORADIUS", "Sicily", "15", "37", "1e6", "km", "WITHDIST"),
    ("GEORADIUS", "Sicily", "15", "37", "20000", "km", "WITHDIST"),
    ("GEORADIUS", "Sicily", "15", "37", "5000", "mi", "WITHHASH"),
    ("GEORADIUS", "nokey", "15", "37", "200", "km"),
    ("GEORADIUS", "nokey", "15", "37", "200", "km", "BOGUS"),
    ("GEORADIUS", "nokey", "x", "37", "200", "km"),
    ("GEORADIUS", "nokey", "15", "37", "200", "km", "ANY"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE", "st", "WITHDIST"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE", "st"),
    ("ZRANGE", "st", "0", "-1", "WITHSCORES"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "STOREDIST", "st"),
    ("ZRANGE", "st", "0", "-1", "WITHSCORES"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "STORE", "st", "STOREDIST", "st2"),
    ("EXISTS", "st", "st2"),
    ("ZRANGE", "st2", "0", "-1", "WITHSCORES"),
    ("GEORADIUS", "Sicily", "15", "37", "200", "km", "STOREDIST", "st", "COUNT", "1", "DESC"),
    ("ZRANGE", "st", "0", "-1", "WITHSCORES"),
    ("GEORADIUS", "Sicily", "0", "0", "1", "km", "STORE", "st"),
    ("EXISTS", "st"),
    ("SET", "st", "x"),
    ("GEORADIUS", "nokey", "15", "37", "200", "km", "STORE", "st"),
    ("EXISTS", "st"),
    ("GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "WITHDIST", "ASC"),
    ("GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "STORE", "st"),
    ("GEORADIUS_RO", "Sicily", "15", "37", "200", "km", "STOREDIST", "st"),
    # GEORADIUSBYMEMBER
    ("GEOADD", "Sicily", "13.583333", "37.316667", "Agrigento"),
    ("GEORADIUSBYMEMBER", "Sicily", "Agrigento", "100", "km"),
    ("GEORADIUSBYMEMBER", "Sicily", "Agrigento", "100", "km", "WITHDIST", "WITHCOORD", "WITHHASH", "ASC"),
    ("GEORADIUSBYMEMBER", "Sicily", "Agrigento", "300", "km", "COUNT", "2", "DESC"),
    ("GEORADIUSBYMEMBER", "Sicily", "Nowhere", "100", "km"),
    ("GEORADIUSBYMEMBER", "Sicily", "Nowhere", "x", "km"),
    ("GEORADIUSBYMEMBER", "Sicily", "Agrigento", "x", "km"),
    ("GEORADIUSBYMEMBER", "Sicily", "Agrigento", "100", "yards"),
    ("GEORADIUSBYMEMBER", "nokey", "Agrigento", "x", "yards"),
    ("GEORADIUSBYMEMBER", "nokey", "Agrigento", "100", "km", "STORE", "st"),
    ("GEORADIUSBYMEMBER", "nokey", "Agrigento", "100", "km", "BOGUS"),
    ("GEORADIUSBYMEMBER", "Sicily", "Agrigento", "300", "km", "STORE", "st"),
    ("ZRANGE", "st", "0", "-1", "WITHSCORES"),
    ("GEORADIUSBYMEMBER_RO", "Sicily", "Agrigento", "100", "km", "WITHDIST"),
    ("GEORADIUSBYMEMBER_RO", "Sicily", "Agrigento", "100", "km", "STORE", "st"),
    # GEOSEARCH
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "Sicily", "FROMMEMBER", "Agrigento", "BYRADIUS", "200", "km", "WITHDIST", "WITHCOORD", "WITHHASH"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km", "ASC", "WITHCOORD", "WITHDIST"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "400", "100", "km", "WITHDIST"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "100", "400", "km", "WITHDIST"),
    ("GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "BYBOX", "0", "0", "m", "WITHDIST"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "COUNT", "1"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "COUNT", "2", "ANY"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "COUNT", "1", "ANY", "DESC"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ANY"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "FROMMEMBER", "Palermo", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "Sicily", "FROMMEMBER", "Palermo", "FROMMEMBER", "Palermo", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "BYBOX", "1", "1", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "km", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "Sicily", "BYRADIUS", "200", "km", "ASC", "WITHDIST"),
    ("geosearch", "Sicily", "BYRADIUS", "200", "km", "ASC", "WITHDIST"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "ASC", "WITHDIST"),
    ("GeoSearch", "Sicily", "FROMLONLAT", "15", "37", "ASC", "WITHDIST"),
    ("GEOSEARCH", "Sicily", "FROMMEMBER", "Nowhere", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "nokey", "FROMMEMBER", "Nowhere", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "nokey", "FROMMEMBER", "Nowhere", "BYRADIUS", "x", "km"),
    ("GEOSEARCH", "nokey", "FROMMEMBER", "Nowhere", "ASC", "COUNT", "2"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "200", "37", "BYRADIUS", "200", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "-1", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "x", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "ly"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "x", "1", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "x", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "-1", "1", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "-1", "km"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "ly"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYBOX", "1", "1"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "STORE", "st"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "STOREDIST"),
    ("GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "COUNT", "0"),
    # GEOSEARCHSTORE
    ("GEOSEARCHSTORE", "dst", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"),
    ("ZRANGE", "dst", "0", "-1", "WITHSCORES"),
    ("GEOSEARCHSTORE", "dst", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "STOREDIST"),
    ("ZRANGE", "dst", "0", "-1", "WITHSCORES"),
    ("GEOSEARCHSTORE", "dst", "Sicily", "FROMMEMBER", "Palermo", "BYBOX", "500", "500", "km", "COUNT", "2", "DESC"),
    ("ZRANGE", "dst", "0", "-1", "WITHSCORES"),
    ("GEOSEARCHSTORE", "dst", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "WITHDIST"),
    ("GEOSEARCHSTORE", "dst", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "STORE", "x"),
    ("GEOSEARCHSTORE", "dst", "Sicily", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"),
    ("EXISTS", "dst"),
    ("SET", "dst", "x"),
    ("GEOSEARCHSTORE", "dst", "nokey", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"),
    ("EXISTS", "dst"),
    ("GEOSEARCHSTORE", "dst", "nokey", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km", "WITHDIST"),
    ("GEOSEARCHSTORE", "Sicily", "Sicily", "FROMMEMBER", "Palermo", "BYRADIUS", "100", "km", "STOREDIST"),
    ("ZRANGE", "Sicily", "0", "-1", "WITHSCORES"),
    # arity
    ("GEOADD", "k", "1", "2"),
    ("GEODIST", "k", "a"),
    ("GEOHASH",),
    ("GEOPOS",),
    ("GEORADIUS", "k", "1", "2", "3"),
    ("GEORADIUSBYMEMBER", "k", "a", "3"),
    ("GEOSEARCH", "k", "FROMLONLAT", "1", "2", "BYRADIUS"),
    ("GEOSEARCHSTORE", "d", "k", "FROMLONLAT", "1", "2", "BYRADIUS"),
]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Address, Address]]:
    """A real redis-server and ours, side by side."""
    with side_by_side(tmp_path_factory.mktemp("geodiff")) as pair:
        yield pair


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_geo_corpus_matches_real_redis(both: tuple[Address, Address], hello: int | None) -> None:
    assert_same_replies(both, CORPUS, hello)


LON = st.floats(min_value=-180, max_value=180, allow_nan=False).map(lambda x: f"{x:.6f}")
LAT = st.floats(min_value=-85.05, max_value=85.05, allow_nan=False).map(lambda x: f"{x:.6f}")
NEAR_LON = st.floats(min_value=9, max_value=11, allow_nan=False).map(lambda x: f"{x:.5f}")
NEAR_LAT = st.floats(min_value=44, max_value=46, allow_nan=False).map(lambda x: f"{x:.5f}")
POINT = st.one_of(st.tuples(LON, LAT), st.tuples(NEAR_LON, NEAR_LAT))
RADIUS = st.sampled_from(["0", "1", "10", "55.5", "100", "250", "1000", "5000", "20000"])
UNIT = st.sampled_from(["m", "km", "mi", "ft"])


def _search() -> st.SearchStrategy[tuple[str, ...]]:
    shape = st.one_of(
        st.tuples(st.just("BYRADIUS"), RADIUS, UNIT),
        st.tuples(st.just("BYBOX"), RADIUS, RADIUS, UNIT),
    )
    order = st.sampled_from(
        [(), ("ASC",), ("DESC",), ("COUNT", "3"), ("COUNT", "2", "ANY"), ("COUNT", "1", "DESC"), ("COUNT", "9", "DESC")]
    )
    flags = st.sampled_from([(), ("WITHDIST",), ("WITHCOORD", "WITHHASH"), ("WITHDIST", "WITHCOORD", "WITHHASH")])
    centre = st.one_of(
        POINT.map(lambda p: ("FROMLONLAT", *p)), st.integers(0, 9).map(lambda i: ("FROMMEMBER", f"m{i}"))
    )
    return st.builds(lambda c, s, o, f: ("GEOSEARCH", "g", *c, *s, *o, *f), centre, shape, order, flags)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Points are often repeated (ties): a search cut by COUNT must order equal distances as
# redis-server's partial quicksort does.
@given(
    points=st.lists(st.one_of(POINT, st.just(("10.00000", "45.00000"))), min_size=1, max_size=60),
    searches=st.lists(_search(), min_size=1, max_size=12),
)
def test_random_searches_match_real_redis(
    both: tuple[Address, Address], points: list[tuple[str, str]], searches: list[tuple[str, ...]]
) -> None:
    adds = [("GEOADD", "g", lon, lat, f"m{i}") for i, (lon, lat) in enumerate(points)]
    members = [f"m{i}" for i in range(len(points))]
    queries = [("GEOPOS", "g", *members), ("GEOHASH", "g", *members), ("GEODIST", "g", "m0", members[-1], "km")]
    assert_same_replies(both, [("DEL", "g"), *adds, *queries, *searches], None)


@pytest.mark.parametrize("hello", [None, 3], ids=["resp2", "resp3"])
def test_ties_cut_by_count_come_in_redis_order(both: tuple[Address, Address], hello: int | None) -> None:
    """Many members at the same few places: a COUNT shorter than the result sorts them partially."""
    commands: list[tuple[str, ...]] = [("DEL", "ties")]
    for i in range(90):
        lon, lat = [("10", "45"), ("10.01", "45"), ("10", "45.01"), ("9.99", "44.99")][i % 4 if i % 7 else 0]
        commands.append(("GEOADD", "ties", lon, lat, f"p{i}"))
    for count in ("1", "5", "8", "13", "41", "60", "89", "90", "200"):
        for order in ("ASC", "DESC"):
            commands.append(
                ("GEOSEARCH", "ties", "FROMLONLAT", "10", "45", "BYRADIUS", "10", "km", "COUNT", count, order)
            )
            commands.append(("GEORADIUS", "ties", "10.005", "45", "10", "km", "COUNT", count, order, "WITHDIST"))
    assert_same_replies(both, commands, hello)
