"""Geospatial indexes: GEOADD, GEODIST, GEOHASH, GEOPOS, GEORADIUS*, GEOSEARCH* (Redis's geo.c).

A geo set is a sorted set whose scores are 52-bit geohashes: the longitude
and latitude are each cut into 2**26 cells (latitude only between
±85.05112878, the Web Mercator limits) and the two cell numbers interleaved,
longitude bits in the odd positions.  A member's position is the centre of
its cell, so every coordinate read back is what redis-server would answer.

A search walks the cell containing the centre and its eight neighbours at a
precision chosen from the radius (the same choice as redis-server, so
results that are not sorted come out in the same order), then keeps the
members whose haversine distance (Earth radius 6372797.560856 m) is within
the shape.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from linechat.services.redis.base import SYNTAX, CommandContext, int_arg
from linechat.services.redis.resp import RespError, integer
from linechat.services.redis.table import KeySpec, redis_command
from linechat.services.redis.zset import SortedSet, parse_score

__all__ = ["GeoCommands", "geo_decode", "geo_distance", "geo_encode"]

LON_MIN, LON_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
STEP_MAX = 26
EARTH_RADIUS = 6372797.560856
MERCATOR_MAX = 20037726.37
_D_R = math.pi / 180.0
_UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
_BASE32 = b"0123456789bcdefghjkmnpqrstuvwxyz"
NO_MEMBER = "ERR could not decode requested zset member"


def _spread(x: int) -> int:
    """The 32 bits of *x* moved to the even bit positions of a 64-bit word."""
    x &= 0xFFFFFFFF
    x = (x | (x << 16)) & 0x0000FFFF0000FFFF
    x = (x | (x << 8)) & 0x00FF00FF00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x << 2)) & 0x3333333333333333
    return (x | (x << 1)) & 0x5555555555555555


def _squash(x: int) -> int:
    """The even bits of a 64-bit word, packed together (the inverse of _spread)."""
    x &= 0x5555555555555555
    x = (x | (x >> 1)) & 0x3333333333333333
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FF
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFF
    return (x | (x >> 16)) & 0x00000000FFFFFFFF


def _encode(lon: float, lat: float, step: int, lat_min: float = LAT_MIN, lat_max: float = LAT_MAX) -> int:
    """The geohash of a point with *step* bits per coordinate (the point is within range)."""
    lat_cell = (lat - lat_min) / (lat_max - lat_min) * float(1 << step)
    lon_cell = (lon - LON_MIN) / (LON_MAX - LON_MIN) * float(1 << step)
    return _spread(int(lat_cell)) | (_spread(int(lon_cell)) << 1)


def _area(bits: int, step: int) -> tuple[float, float, float, float]:
    """(lon_min, lon_max, lat_min, lat_max) of a geohash cell."""
    lat_cell, lon_cell = _squash(bits), _squash(bits >> 1)
    cells = float(1 << step)
    lat_scale, lon_scale = LAT_MAX - LAT_MIN, LON_MAX - LON_MIN
    return (
        LON_MIN + (lon_cell / cells) * lon_scale,
        LON_MIN + ((lon_cell + 1) / cells) * lon_scale,
        LAT_MIN + (lat_cell / cells) * lat_scale,
        LAT_MIN + ((lat_cell + 1) / cells) * lat_scale,
    )


def geo_encode(lon: float, lat: float) -> int:
    """The 52-bit score of a point."""
    return _encode(lon, lat, STEP_MAX)


def geo_decode(score: float) -> tuple[float, float]:
    """(longitude, latitude) of the centre of the cell a score names."""
    lon_min, lon_max, lat_min, lat_max = _area(int(score) & 0xFFFFFFFFFFFFFFFF, STEP_MAX)
    lon = min(max((lon_min + lon_max) / 2, LON_MIN), LON_MAX)
    lat = min(max((lat_min + lat_max) / 2, LAT_MIN), LAT_MAX)
    return lon, lat


def geo_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine distance in meters, as Redis computes it."""
    lat1r, lon1r, lat2r, lon2r = lat1 * _D_R, lon1 * _D_R, lat2 * _D_R, lon2 * _D_R
    u = math.sin((lat2r - lat1r) / 2)
    v = math.sin((lon2r - lon1r) / 2)
    return 2.0 * EARTH_RADIUS * math.asin(math.sqrt(u * u + math.cos(lat1r) * math.cos(lat2r) * v * v))


def _human(value: float) -> bytes:
    """A coordinate as Redis prints it in RESP2: 17 decimals, trailing zeros cut."""
    text = b"%.17f" % value
    text = text.rstrip(b"0").rstrip(b".")
    return b"0" if text == b"-0" else text


def _steps_for(radius: float, lat: float) -> int:
    """The precision of the cells to search for a shape of this size (Redis's estimate)."""
    if radius == 0:
        return STEP_MAX
    step = 1
    while radius < MERCATOR_MAX:
        radius *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return min(max(step, 1), STEP_MAX)


def _move(bits: int, step: int, dlon: int, dlat: int) -> int:
    """The neighbouring cell, wrapping around at the edges of the grid."""
    size = 1 << step
    lat_cell = (_squash(bits) + dlat) % size
    lon_cell = (_squash(bits >> 1) + dlon) % size
    return _spread(lat_cell) | (_spread(lon_cell) << 1)


class Shape:
    """A search: its centre, a radius or a box (width, height), the unit's size in meters."""

    __slots__ = ("height", "lat", "lon", "radius", "unit", "width")

    def __init__(self) -> None:
        self.lon = self.lat = 0.0
        self.radius: float | None = None
        self.width = self.height = 0.0
        self.unit = 1.0

    def bounds(self) -> tuple[float, float, float, float]:
        """(lon_min, lat_min, lon_max, lat_max) of the area the shape may reach."""
        if self.radius is not None:
            half_h = half_w = self.radius * self.unit
        else:
            half_h = self.unit * (self.height / 2)
            half_w = self.unit * (self.width / 2)
        lat_delta = (half_h / EARTH_RADIUS) / _D_R
        top = (half_w / EARTH_RADIUS / math.cos((self.lat + lat_delta) * _D_R)) / _D_R
        bottom = (half_w / EARTH_RADIUS / math.cos((self.lat - lat_delta) * _D_R)) / _D_R
        delta = bottom if self.lat < 0 else top
        return self.lon - delta, self.lat - lat_delta, self.lon + delta, self.lat + lat_delta

    def cells(self) -> list[tuple[int, int]]:
        """The (bits, step) cells to search in Redis's order: centre, N, S, E, W, NE, NW, SE, SW; (0, 0) skipped."""
        min_lon, min_lat, max_lon, max_lat = self.bounds()
        if self.radius is not None:
            radius = self.radius
        else:
            radius = math.sqrt((self.width / 2) * (self.width / 2) + (self.height / 2) * (self.height / 2))
        step = _steps_for(radius * self.unit, self.lat)
        centre = _encode(self.lon, self.lat, step)
        # One step coarser when a side cell does not reach the edge of the area.
        north = _area(_move(centre, step, 0, 1), step)
        south = _area(_move(centre, step, 0, -1), step)
        east = _area(_move(centre, step, 1, 0), step)
        west = _area(_move(centre, step, -1, 0), step)
        if step > 1 and (north[3] < max_lat or south[2] > min_lat or east[1] < max_lon or west[0] > min_lon):
            step -= 1
            centre = _encode(self.lon, self.lat, step)
        moves = [(0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
        cells = [(centre, step)] + [(_move(centre, step, dx, dy), step) for dx, dy in moves[1:]]
        if step >= 2:
            lon_lo, lon_hi, lat_lo, lat_hi = _area(centre, step)
            dropped: set[int] = set()
            if lat_lo < min_lat:
                dropped |= {2, 7, 8}
            if lat_hi > max_lat:
                dropped |= {1, 5, 6}
            if lon_lo < min_lon:
                dropped |= {4, 6, 8}
            if lon_hi > max_lon:
                dropped |= {3, 5, 7}
            for i in dropped:
                cells[i] = (0, 0)
        return cells

    def distance_if_inside(self, lon: float, lat: float) -> float | None:
        """The distance from the centre to a point in the shape, None if it is outside."""
        if self.radius is not None:
            distance = geo_distance(self.lon, self.lat, lon, lat)
            return None if distance > self.radius * self.unit else distance
        width, height = self.width * self.unit, self.height * self.unit
        if geo_distance(lon, lat, self.lon, lat) > width / 2 or geo_distance(lon, lat, lon, self.lat) > height / 2:
            return None
        return geo_distance(self.lon, self.lat, lon, lat)


#: A result: (distance in meters, member, score, longitude, latitude).
Found = tuple[float, bytes, float, float, float]


def _search(zset: SortedSet, shape: Shape, limit: int) -> list[Found]:
    """The members inside the shape, cell by cell (stops after *limit* when it is not 0)."""
    found: list[Found] = []
    cells = shape.cells()
    last = 0  # as Redis: the centre cell (index 0) is never compared with the next ones
    for i, (bits, step) in enumerate(cells):
        if bits == 0 and step == 0:
            continue
        if last and cells[last] == (bits, step):
            continue  # a huge radius makes neighbours repeat
        if found and limit and len(found) >= limit:
            break
        low = bits << (52 - step * 2)
        high = (bits + 1) << (52 - step * 2)
        for score, member in zset.score_walk(float(low), False, float(high), True, 0, -1, False):
            lon, lat = geo_decode(score)
            distance = shape.distance_if_inside(lon, lat)
            if distance is None:
                continue
            found.append((distance, member, score, lon, lat))
            if limit and len(found) >= limit:
                break
        last = i
    return found


def partial_sort(items: list[Found], count: int, descending: bool) -> None:
    """Put the *count* nearest (farthest) first, by the steps of the partial quicksort Redis uses.

    The classic Bentley-McIlroy quicksort (insertion sort under 7 items,
    median of three or of nine, fat partitions of equal keys) that skips the
    parts holding none of the positions 0..count-1.  Equal distances end up
    in whatever order those steps leave them, as in redis-server.
    """
    sign = -1 if descending else 1

    def cmp(i: int, j: int) -> int:
        a, b = items[i][0], items[j][0]
        return sign * (1 if a > b else 0 if a == b else -1)

    def swap(i: int, j: int) -> None:
        items[i], items[j] = items[j], items[i]

    def med3(a: int, b: int, c: int) -> int:
        if cmp(a, b) < 0:
            return b if cmp(b, c) < 0 else (c if cmp(a, c) < 0 else a)
        return b if cmp(b, c) > 0 else (a if cmp(a, c) < 0 else c)

    low_wanted, high_wanted = 0, count - 1
    stack = [(0, len(items))]
    while stack:
        a, n = stack.pop()
        if n < 7:
            for m in range(a + 1, a + n):
                k = m
                while k > a and cmp(k - 1, k) > 0:
                    swap(k, k - 1)
                    k -= 1
            continue
        m = a + n // 2
        if n > 7:
            lo, hi = a, a + n - 1
            if n > 40:
                d = n // 8
                lo = med3(lo, lo + d, lo + 2 * d)
                m = med3(m - d, m, m + d)
                hi = med3(hi - 2 * d, hi - d, hi)
            m = med3(lo, m, hi)
        swap(a, m)
        pa = pb = a + 1
        pc = pd = a + n - 1
        while True:
            while pb <= pc:
                r = cmp(pb, a)
                if r > 0:
                    break
                if r == 0:
                    swap(pa, pb)
                    pa += 1
                pb += 1
            while pb <= pc:
                r = cmp(pc, a)
                if r < 0:
                    break
                if r == 0:
                    swap(pc, pd)
                    pd -= 1
                pc -= 1
            if pb > pc:
                break
            swap(pb, pc)
            pb += 1
            pc -= 1
        end = a + n
        r = min(pa - a, pb - pa)
        for i in range(r):
            swap(a + i, pb - r + i)
        r = min(pd - pc, end - pd - 1)
        for i in range(r):
            swap(pb + i, end - r + i)
        # The smaller keys are now at the start, the larger at the end; each part is sorted
        # on its own (the order does not matter, they are disjoint) if it holds a wanted position.
        left, right = pb - pa, pd - pc
        if left > 1 and not (high_wanted < a or low_wanted > a + left - 1):
            stack.append((a, left))
        if right > 1 and not (high_wanted < end - right or low_wanted > end - 1):
            stack.append((end - right, right))


def _coordinates(args: tuple[bytes, ...] | list[bytes]) -> tuple[float, float]:
    """A longitude and latitude argument pair, checked against the limits."""
    lon, lat = parse_score(args[0]), parse_score(args[1])
    if lon < LON_MIN or lon > LON_MAX or lat < LAT_MIN or lat > LAT_MAX:
        raise RespError(f"ERR invalid longitude,latitude pair {lon:f},{lat:f}")
    return lon, lat


def _unit(arg: bytes) -> float:
    unit = _UNITS.get(arg.lower())
    if unit is None:
        raise RespError("ERR unsupported unit provided. please use M, KM, FT, MI")
    return unit


def _number(arg: bytes, message: str) -> float:
    return parse_score(arg, message)


class GeoCommands(CommandContext):
    """The geo commands: sorted sets read and written through geohash scores."""

    if TYPE_CHECKING:  # provided by SortedSetCommands in the composed class

        def _zset(self, key: bytes) -> SortedSet | None: ...
        def _store(self, key: bytes, zset: SortedSet) -> None: ...
        def cmd_zadd(self, key: bytes, first: bytes, second: bytes, *more: bytes) -> bytes: ...

    @redis_command("GEOADD", arity=-5, flags="write denyoom", keys=(1, 1, 1), key_flags="RW update", group="geo")
    def cmd_geoadd(self, key: bytes, *args: bytes) -> bytes:
        """Add members at longitude/latitude positions (NX, XX, CH as ZADD); the count added (or changed)."""
        first = 0
        nx = xx = False
        while first < len(args):
            option = args[first].upper()
            if option == b"NX":
                nx = True
            elif option == b"XX":
                xx = True
            elif option != b"CH":
                break
            first += 1
        if (len(args) - first) % 3 or (nx and xx):
            raise RespError(SYNTAX)
        zadd = list(args[:first])
        for i in range(first, len(args), 3):
            lon, lat = _coordinates(args[i : i + 2])
            zadd += [b"%d" % geo_encode(lon, lat), args[i + 2]]
        # Run as the ZADD it is; the GEOADD itself is recorded (its replay computes the same scores).
        return self.cmd_zadd(key, *zadd)

    @redis_command("GEODIST", arity=-4, flags="readonly", keys=(1, 1, 1), group="geo")
    def cmd_geodist(self, key: bytes, member1: bytes, member2: bytes, *unit: bytes) -> bytes:
        """Distance between two members, in meters or the unit given (4 decimals)."""
        to_meters = 1.0
        if len(unit) == 1:
            to_meters = _unit(unit[0])
        elif unit:
            raise RespError(SYNTAX)
        zset = self._zset(key)
        if zset is None:
            return self.null
        score1, score2 = zset.scores.get(member1), zset.scores.get(member2)
        if score1 is None or score2 is None:
            return self.null
        distance = geo_distance(*geo_decode(score1), *geo_decode(score2)) / to_meters
        text = b"%.4f" % distance
        return b"$%d\r\n%s\r\n" % (len(text), text)

    @redis_command("GEOHASH", arity=-2, flags="readonly", keys=(1, 1, 1), group="geo")
    def cmd_geohash(self, key: bytes, *members: bytes) -> bytes:
        """Standard 11-character geohash strings of members (null for missing ones)."""
        zset = self._zset(key)
        parts = [b"*%d\r\n" % len(members)]
        for member in members:
            score = None if zset is None else zset.scores.get(member)
            if score is None:
                parts.append(self.null)
                continue
            lon, lat = geo_decode(score)
            # The standard geohash covers latitudes -90..90; its 11th character holds no bits (52 of 55).
            bits = _encode(lon, lat, STEP_MAX, -90.0, 90.0)
            text = bytes(_BASE32[(bits >> (52 - (i + 1) * 5)) & 31] for i in range(10)) + b"0"
            parts.append(b"$11\r\n%s\r\n" % text)
        return b"".join(parts)

    def _coordinate_reply(self, lon: float, lat: float) -> bytes:
        """A [longitude, latitude] pair in the "human" 17-decimal form: bulk strings, or RESP3 doubles."""
        x, y = _human(lon), _human(lat)
        if self.dialect.version == 2:
            return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(x), x, len(y), y)
        return b"*2\r\n,%s\r\n,%s\r\n" % (x, y)

    @redis_command("GEOPOS", arity=-2, flags="readonly", keys=(1, 1, 1), group="geo")
    def cmd_geopos(self, key: bytes, *members: bytes) -> bytes:
        """Longitude and latitude of members (null for missing ones)."""
        zset = self._zset(key)
        parts = [b"*%d\r\n" % len(members)]
        for member in members:
            score = None if zset is None else zset.scores.get(member)
            parts.append(self.null_array if score is None else self._coordinate_reply(*geo_decode(score)))
        return b"".join(parts)

    # ---------------------------------------------------------------- searches

    def _georadius(self, source: bytes, args: tuple[bytes, ...], kind: str, store: bytes | None = None) -> bytes:
        """GEORADIUS (kind "coords"), GEORADIUSBYMEMBER ("member") and GEOSEARCH[STORE] ("search")."""
        zset = self._zset(source)
        name = self.argv[0].decode("latin-1")
        search = kind == "search"
        shape = Shape()
        if kind == "coords":
            shape.lon, shape.lat = _coordinates(args[:2])
            shape.radius, shape.unit = self._distance(args[2:4])
            options = args[4:]
        elif kind == "member":
            if zset is not None:
                score = zset.scores.get(args[0])
                if score is None:
                    raise RespError(NO_MEMBER)
                shape.lon, shape.lat = geo_decode(score)
                shape.radius, shape.unit = self._distance(args[1:3])
            options = args[3:]
        else:
            options = args
        may_store = not search and name.upper() in ("GEORADIUS", "GEORADIUSBYMEMBER")
        withdist = withhash = withcoord = any_ = False
        frommember = fromlonlat = byradius = bybox = False
        storedist = False
        sort = ""
        count = 0
        i = 0
        n = len(options)
        while i < n:
            option = options[i].lower()
            if option == b"withdist":
                withdist = True
            elif option == b"withhash":
                withhash = True
            elif option == b"withcoord":
                withcoord = True
            elif option == b"any":
                any_ = True
            elif option in (b"asc", b"desc"):
                sort = option.decode()
            elif option == b"count" and i + 1 < n:
                count = int_arg(options[i + 1])
                if count <= 0:
                    raise RespError("ERR COUNT must be > 0")
                i += 1
            elif option in (b"store", b"storedist") and i + 1 < n and may_store:
                store = options[i + 1]
                storedist = option == b"storedist"
                i += 1
            elif option == b"storedist" and search and store is not None:
                storedist = True
            elif option == b"frommember" and i + 1 < n and search and not fromlonlat:
                if zset is not None:
                    score = zset.scores.get(options[i + 1])
                    if score is None:
                        raise RespError(NO_MEMBER)
                    shape.lon, shape.lat = geo_decode(score)
                frommember = True
                i += 1
            elif option == b"fromlonlat" and i + 2 < n and search and not frommember:
                shape.lon, shape.lat = _coordinates(options[i + 1 : i + 3])
                fromlonlat = True
                i += 2
            elif option == b"byradius" and i + 2 < n and search and not bybox:
                shape.radius, shape.unit = self._distance(options[i + 1 : i + 3])
                byradius = True
                i += 2
            elif option == b"bybox" and i + 3 < n and search and not byradius:
                shape.width = _number(options[i + 1], "ERR need numeric width")
                shape.height = _number(options[i + 2], "ERR need numeric height")
                if shape.height < 0 or shape.width < 0:
                    raise RespError("ERR height or width cannot be negative")
                shape.unit = _unit(options[i + 3])
                shape.radius = None
                bybox = True
                i += 3
            else:
                raise RespError(SYNTAX)
            i += 1
        if store is not None and (withdist or withhash or withcoord):
            where = "GEOSEARCHSTORE" if search else "STORE option in GEORADIUS"
            raise RespError(f"ERR {where} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
        if search and not (frommember or fromlonlat):
            raise RespError(f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")
        if search and not (byradius or bybox):
            raise RespError(f"ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")
        if any_ and not count:
            raise RespError("ERR the ANY argument requires COUNT argument")
        if zset is None:
            if store is None:
                return b"*0\r\n"
            if self.db.delete(store):
                self._propagate([b"DEL", store])
            return integer(0)
        if count and not sort and not any_:
            sort = "asc"
        found = _search(zset, shape, count if any_ else 0)
        if sort:
            if count and count < len(found):
                # Only the first COUNT are needed: Redis sorts them with a partial quicksort, which
                # is not stable; the same steps give equal distances the same order as redis-server.
                partial_sort(found, count, sort == "desc")
            else:
                found.sort(key=lambda f: f[0], reverse=sort == "desc")  # a stable sort, as glibc's qsort
            found = found[:count] if count else found
        if store is not None:
            result = SortedSet()
            for distance, member, score, _, _ in found:
                result.add(member, distance / shape.unit if storedist else score)
            self._store(store, result)
            return integer(len(found))
        extra = withdist + withhash + withcoord
        parts = [b"*%d\r\n" % len(found)]
        for distance, member, score, lon, lat in found:
            if extra:
                parts.append(b"*%d\r\n" % (extra + 1))
            parts.append(b"$%d\r\n%s\r\n" % (len(member), member))
            if withdist:
                text = b"%.4f" % (distance / shape.unit)
                parts.append(b"$%d\r\n%s\r\n" % (len(text), text))
            if withhash:
                parts.append(integer(int(score)))
            if withcoord:
                parts.append(self._coordinate_reply(lon, lat))
        return b"".join(parts)

    @staticmethod
    def _distance(args: tuple[bytes, ...]) -> tuple[float, float]:
        """A radius and its unit (in meters per unit)."""
        radius = _number(args[0], "ERR need numeric radius")
        if radius < 0:
            raise RespError("ERR radius cannot be negative")
        return radius, _unit(args[1])

    @redis_command(
        "GEORADIUS",
        arity=-6,
        flags="write denyoom",
        keys=[
            KeySpec(("RO", "access"), 1),
            KeySpec(("OW", "update"), ("STORE", 6)),
            KeySpec(("OW", "update"), ("STOREDIST", 6)),
        ],
        legacy_keys=(1, 1, 1),
        group="geo",
    )
    def cmd_georadius(self, key: bytes, lon: bytes, lat: bytes, radius: bytes, unit: bytes, *opts: bytes) -> bytes:
        """Members within a radius of a point (deprecated form of GEOSEARCH), with STORE/STOREDIST."""
        return self._georadius(key, (lon, lat, radius, unit, *opts), "coords")

    @redis_command("GEORADIUS_RO", arity=-6, flags="readonly", keys=(1, 1, 1), group="geo")
    def cmd_georadius_ro(self, key: bytes, lon: bytes, lat: bytes, radius: bytes, unit: bytes, *opts: bytes) -> bytes:
        """GEORADIUS without STORE."""
        return self._georadius(key, (lon, lat, radius, unit, *opts), "coords")

    @redis_command(
        "GEORADIUSBYMEMBER",
        arity=-5,
        flags="write denyoom",
        keys=[
            KeySpec(("RO", "access"), 1),
            KeySpec(("OW", "update"), ("STORE", 5)),
            KeySpec(("OW", "update"), ("STOREDIST", 5)),
        ],
        legacy_keys=(1, 1, 1),
        group="geo",
    )
    def cmd_georadiusbymember(self, key: bytes, member: bytes, radius: bytes, unit: bytes, *opts: bytes) -> bytes:
        """Members within a radius of a member (deprecated form of GEOSEARCH), with STORE/STOREDIST."""
        return self._georadius(key, (member, radius, unit, *opts), "member")

    @redis_command("GEORADIUSBYMEMBER_RO", arity=-5, flags="readonly", keys=(1, 1, 1), group="geo")
    def cmd_georadiusbymember_ro(self, key: bytes, member: bytes, radius: bytes, unit: bytes, *opts: bytes) -> bytes:
        """GEORADIUSBYMEMBER without STORE."""
        return self._georadius(key, (member, radius, unit, *opts), "member")

    @redis_command("GEOSEARCH", arity=-7, flags="readonly", keys=(1, 1, 1), group="geo")
    def cmd_geosearch(self, key: bytes, *opts: bytes) -> bytes:
        """Members within a radius or a box around a member or a point."""
        return self._georadius(key, opts, "search")

    @redis_command(
        "GEOSEARCHSTORE",
        arity=-8,
        flags="write denyoom",
        keys=[KeySpec(("OW", "update"), 1), KeySpec(("RO", "access"), 2)],
        group="geo",
    )
    def cmd_geosearchstore(self, dest: bytes, source: bytes, *opts: bytes) -> bytes:
        """GEOSEARCH into a sorted set (scores are geohashes, or distances with STOREDIST)."""
        return self._georadius(source, opts, "search", dest)
