"""ACL users: rules, GETUSER, LIST, CAT, DRYRUN, LOG, NOPERM for commands, keys, channels, beside redis-server 7.0.

The differential scenarios play the same commands on a few connections to a
real redis-server and to ours and compare every reply byte for byte, in
RESP2 and (after HELLO 3) in RESP3.  Where Redis's output has an order of
its own hash table (the single commands after the categories in a rule
list, the commands of ACL CAT <category>), the scenarios keep to one such
item or compare as sets.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from linechat.services.redis import RedisService
from linechat.testing import ServiceHarness, serve
from redis_wire import RawClient, real_redis, split_replies
from structlog.testing import capture_logs

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
DEADLINE = 20.0


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    tmp = tmp_path_factory.mktemp("acl")
    with real_redis(tmp) as real, serve(RedisService, data_dir=tmp / "ours") as srv:
        yield real, srv.address()


# (connection, command): connection 0 is the default user throughout; 1 and 2 log in as others.
SCENARIO: list[tuple[int, tuple[str, ...]]] = [
    (0, ("ACL", "WHOAMI")),
    (0, ("ACL", "GETUSER", "default")),
    (0, ("ACL", "LIST")),
    (0, ("ACL", "USERS")),
    (0, ("ACL", "CAT")),
    (0, ("ACL", "CAT", "nosuch")),
    (0, ("ACL", "CAT", "a", "b")),
    (0, ("ACL", "GETUSER", "nobody")),
    (0, ("ACL", "SETUSER", "alice")),
    (0, ("ACL", "GETUSER", "alice")),
    (0, ("ACL", "LIST")),
    # Every kind of rule, and the errors.
    (0, ("ACL", "SETUSER", "alice", "on", ">pw1", ">pw2", "~k*", "%R~r*", "%W~w*", "&ch*", "+get")),
    (0, ("ACL", "GETUSER", "alice")),
    (0, ("ACL", "SETUSER", "alice", "<pw2", "%W~r*", "%RW~x", "%WR~y", "%R", "~")),
    (0, ("ACL", "GETUSER", "alice")),
    (0, ("ACL", "SETUSER", "bob", "reset", "on", "nopass", "allkeys", "allchannels", "+@read", "-@dangerous")),
    (0, ("ACL", "GETUSER", "bob")),
    (0, ("ACL", "SETUSER", "bob", "+@all", "-@write", "resetkeys", "~b:*", "resetchannels")),
    (0, ("ACL", "GETUSER", "bob")),
    (0, ("ACL", "SETUSER", "carol", "on", "#" + "a" * 64, "+@hash", "+@set", "-@geo", "+select|0")),
    (0, ("ACL", "GETUSER", "carol")),
    (0, ("ACL", "SETUSER", "carol", "!" + "a" * 64, "nopass", "-@all", "+config")),
    (0, ("ACL", "GETUSER", "carol")),
    (0, ("ACL", "SETUSER", "carol", "-config|set")),
    (0, ("ACL", "GETUSER", "carol")),
    (0, ("ACL", "SETUSER", "dave", "on", "nopass", "~d*", "+get", "(+set ~s*)", "(%R~q", "&x", "+publish)")),
    (0, ("ACL", "GETUSER", "dave")),
    (0, ("ACL", "SETUSER", "erin", "skip-sanitize-payload", "(", ")", "clearselectors", "(+get)")),
    (0, ("ACL", "GETUSER", "erin")),
    (0, ("ACL", "SETUSER", "frank", "+@ALL", "-GET", "~A", "~*", "&*", "NOPASS", "ON")),
    (0, ("ACL", "GETUSER", "frank")),
    (0, ("ACL", "SETUSER", "grace", "+select|0", "-select", ">x", "nopass", "resetpass")),
    (0, ("ACL", "GETUSER", "grace")),
    # Rules that redis-server describes with several categories and many single commands.
    (0, ("ACL", "SETUSER", "henry", "+@read", "-@string", "+@hash", "+@pubsub", "-@dangerous", "+cluster|info")),
    (0, ("ACL", "GETUSER", "henry")),
    (0, ("ACL", "SETUSER", "ivan", "+@all", "-@write", "-@admin", "+set", "-bitcount", "-@geo")),
    (0, ("ACL", "GETUSER", "ivan")),
    (0, ("ACL", "SETUSER", "judy", "-@all", "+@admin", "-@dangerous", "+keys", "+client", "-client|kill")),
    (0, ("ACL", "GETUSER", "judy")),
    (0, ("ACL", "DELUSER", "henry", "ivan", "judy")),
    (0, ("ACL", "LIST")),
    (0, ("ACL", "USERS")),
    (0, ("ACL", "SETUSER", "x", "nosuch")),
    (0, ("ACL", "SETUSER", "x", "+nosuch")),
    (0, ("ACL", "SETUSER", "x", "-nosuch")),
    (0, ("ACL", "SETUSER", "x", "+@nosuch")),
    (0, ("ACL", "SETUSER", "x", "%~a")),
    (0, ("ACL", "SETUSER", "x", "%Rx~a")),
    (0, ("ACL", "SETUSER", "x", "%RR~a")),
    (0, ("ACL", "SETUSER", "x", "allkeys", "~a")),
    (0, ("ACL", "SETUSER", "x", "allchannels", "&a")),
    (0, ("ACL", "SETUSER", "x", "<nope")),
    (0, ("ACL", "SETUSER", "x", "!nope")),
    (0, ("ACL", "SETUSER", "x", "#" + "A" * 64)),
    (0, ("ACL", "SETUSER", "x", "+config|get|x")),
    (0, ("ACL", "SETUSER", "x", "+get|")),
    (0, ("ACL", "SETUSER", "x", "(+get")),
    (0, ("ACL", "SETUSER", "x", "(on)")),
    (0, ("ACL", "SETUSER", "a b")),
    (0, ("ACL", "GETUSER", "x")),  # nothing applied: the user was not made
    (0, ("ACL", "SETUSER", "alice", "on", "+lpush", "bad-rule")),
    (0, ("ACL", "GETUSER", "alice")),  # all or nothing
    # DRYRUN.
    (0, ("ACL", "DRYRUN", "alice", "get", "k1")),
    (0, ("ACL", "DRYRUN", "alice", "get", "zz")),
    (0, ("ACL", "DRYRUN", "alice", "lpush", "k", "v")),
    (0, ("ACL", "DRYRUN", "dave", "set", "s1", "v")),
    (0, ("ACL", "DRYRUN", "dave", "set", "d1", "v")),
    (0, ("ACL", "DRYRUN", "dave", "publish", "x", "m")),
    (0, ("ACL", "DRYRUN", "dave", "publish", "y", "m")),
    (0, ("ACL", "DRYRUN", "carol", "config", "get", "x")),
    (0, ("ACL", "DRYRUN", "carol", "config", "set", "x", "y")),
    (0, ("ACL", "DRYRUN", "nobody", "get", "a")),
    (0, ("ACL", "DRYRUN", "alice", "nosuch")),
    (0, ("ACL", "DRYRUN", "alice", "config")),
    (0, ("ACL", "DRYRUN", "alice", "config", "nosuch")),
    (0, ("ACL", "DRYRUN", "alice", "config", "get")),
    (0, ("ACL", "DRYRUN", "alice", "get")),
    (0, ("ACL", "DRYRUN", "alice")),
    # Logging in as them.
    (1, ("AUTH", "alice", "wrong")),
    (1, ("AUTH", "nobody", "pw1")),
    (1, ("AUTH", "grace", "x")),  # off
    (1, ("AUTH", "alice", "pw2")),  # removed
    (1, ("AUTH", "alice", "pw1")),
    (1, ("ACL", "WHOAMI")),
    (1, ("GET", "k1")),
    (1, ("GET", "r1")),
    (1, ("GET", "zz")),
    (1, ("GET", "w1")),
    (1, ("SET", "k1", "v")),
    (1, ("LPUSH", "k1", "v")),
    (1, ("CLIENT", "ID", "x")),
    (1, ("GET",)),
    (1, ("NOSUCH",)),
    (1, ("MULTI",)),
    (1, ("GET", "k1")),
    (1, ("GET", "zz")),
    (1, ("EXEC",)),
    (1, ("PING",)),
    (0, ("ACL", "SETUSER", "alice", "+multi", "+exec", "+eval", "+publish", "+subscribe", "+psubscribe", "+acl")),
    (0, ("ACL", "DRYRUN", "alice", "exec")),
    (1, ("MULTI",)),
    (1, ("GET", "k1")),
    (1, ("SET", "k1", "v")),
    (0, ("ACL", "SETUSER", "alice", "-get")),
    (1, ("EXEC",)),
    (0, ("ACL", "SETUSER", "alice", "+get")),
    (1, ("EVAL", "return redis.call('get', 'zz')", "0")),
    (1, ("EVAL", "return redis.call('lpush', 'k1', 'x')", "0")),
    (1, ("EVAL", "return redis.pcall('lpush', 'k1', 'x')", "0")),
    (1, ("EVAL", "return redis.call('publish', 'zz', 'x')", "0")),
    (1, ("EVAL", "return redis.call('get', KEYS[1])", "1", "zz")),
    (1, ("EVAL", "return redis.call('get', KEYS[1])", "1", "k1")),
    (1, ("PUBLISH", "zz", "m")),
    (1, ("PUBLISH", "ch1", "m")),
    (1, ("ACL", "DELUSER", "nobody")),
    (1, ("ACL", "LIST")),
    (1, ("ACL", "WHOAMI")),
    (1, ("SUBSCRIBE", "zz")),
    (1, ("PSUBSCRIBE", "ch*x")),
    (1, ("SUBSCRIBE", "ch1")),
    (1, ("PSUBSCRIBE", "ch*")),
    (1, ("PING",)),
    # A first argument allowed on its own.
    (2, ("AUTH", "carol", "anything")),
    (0, ("ACL", "SETUSER", "carol", "on", "+select|0", "+select|1")),
    (2, ("SELECT", "0")),
    (2, ("SELECT", "1")),
    (2, ("SELECT", "2")),
    (2, ("CONFIG", "GET", "maxclients")),
    (2, ("CONFIG", "SET", "maxclients", "10")),
    (2, ("CONFIG", "NOSUCH")),
    (2, ("PING",)),
    (2, ("RESET",)),
    (2, ("ACL", "WHOAMI")),
    (0, ("ACL", "DELUSER", "default")),
    (0, ("ACL", "DELUSER", "erin", "frank", "nobody")),
    (0, ("ACL", "USERS")),
    (0, ("ACL", "GENPASS", "0")),
    (0, ("ACL", "GENPASS", "4097")),
    (0, ("ACL", "GENPASS", "x")),
    (0, ("ACL", "LOG", "x")),
    (0, ("ACL", "LOG", "-1")),
    (0, ("ACL", "LOG", "RESET", "x")),
    (0, ("ACL", "SAVE")),
    (0, ("ACL", "LOAD")),
    (0, ("ACL", "NOSUCH")),
    (0, ("ACL",)),
    (0, ("ACL", "SETUSER")),
    (0, ("ACL", "GETUSER")),
    (0, ("ACL", "LOG", "RESET")),
    (0, ("ACL", "LOG")),
]


# A run of single-command rules after the categories: redis-server writes them in its hash table's order.
_SINGLES = re.compile(rb"(?<=[+-]@all)((?: [+-]@[a-z]+)*)((?: [+-][^ @()][^ ()]*)+)")


def _sorted_singles(reply: bytes) -> bytes:
    """The reply with each run of single-command rules sorted (the same length, so bulk headers still hold)."""
    return _SINGLES.sub(lambda m: m.group(1) + b" " + b" ".join(sorted(m.group(2).split())), reply)


def _play(address: tuple[str, int], protocol: int) -> list[bytes]:
    clients = [RawClient(address, timeout=DEADLINE) for _ in range(3)]
    try:
        if protocol == 3:
            for c in clients:
                c.call("HELLO", "3")
        return [_sorted_singles(clients[i].call(*command)) for i, command in SCENARIO]
    finally:
        for c in clients:
            c.close()


def _cleanup(address: tuple[str, int]) -> None:
    c = RawClient(address, timeout=DEADLINE)
    users = split_replies(c.call("ACL", "USERS").split(b"\r\n", 1)[1])
    for raw in users:
        name = raw.split(b"\r\n")[1]
        if name != b"default":
            c.call("ACL", "DELUSER", name)
    c.call("ACL", "LOG", "RESET")
    c.call("FLUSHALL")
    c.close()


@needs_redis
@pytest.mark.parametrize("protocol", [2, 3])
def test_acl_scenario_matches_redis_server(both: tuple[tuple[str, int], tuple[str, int]], protocol: int) -> None:
    real, ours = both
    for address in both:
        _cleanup(address)
    theirs, mine = _play(real, protocol), _play(ours, protocol)
    mismatches = [(cmd, t, m) for (_, cmd), t, m in zip(SCENARIO, theirs, mine, strict=True) if t != m]
    assert not mismatches, "\n".join(f"{c}:\n redis {t!r}\n ours  {m!r}" for c, t, m in mismatches[:8])


def _log_shape(reply: bytes) -> list[list[bytes]]:
    """ACL LOG entries without what differs between two servers (the age, the client-info line)."""
    entries = split_replies(reply[reply.index(b"\r\n") + 2 :])
    out = []
    for entry in entries:
        fields = split_replies(entry[entry.index(b"\r\n") + 2 :])
        kept = []
        for name, value in zip(fields[::2], fields[1::2], strict=True):
            if b"age-seconds" in name:
                value = value[:1]  # the type only (bulk in RESP2, double in RESP3)
            elif b"client-info" in name:
                text = value.split(b"\r\n")[1]
                value = b" ".join(f for f in text.split() if f.split(b"=")[0] in (b"cmd", b"user", b"db", b"multi"))
            kept.append(name + value)
        out.append([entry[:1], *kept])
    return out


@needs_redis
@pytest.mark.parametrize("protocol", [2, 3])
def test_acl_log_matches_redis_server(both: tuple[tuple[str, int], tuple[str, int]], protocol: int) -> None:
    results = []
    for address in both:
        _cleanup(address)
        admin, user = RawClient(address), RawClient(address)
        if protocol == 3:
            admin.call("HELLO", "3")
        admin.call("ACL", "SETUSER", "u", "on", ">pw", "~k*", "&c*", "+get", "+multi", "+exec", "+eval", "+publish")
        user.call("AUTH", "u", "bad")
        user.call("auth", "u", "bad")  # the same entry, counted twice: the command as typed is its object
        user.call("HELLO", "2", "AUTH", "nobody", "bad")
        user.call("AUTH", "u", "pw")
        user.call("GET", "zz")
        user.call("LPUSH", "k", "v")
        user.call("PUBLISH", "zz", "m")
        user.call("MULTI")
        user.call("GET", "yy")
        user.call("EXEC")
        user.call("EVAL", "return redis.pcall('lpush', 'k', 'x')", "0")
        results.append((_log_shape(admin.call("ACL", "LOG")), _log_shape(admin.call("ACL", "LOG", "2"))))
        admin.close()
        user.close()
    assert results[0] == results[1]
    assert len(results[1][0]) == 8 and len(results[1][1]) == 2


@needs_redis
def test_acl_cat_matches_redis_server(both: tuple[tuple[str, int], tuple[str, int]]) -> None:
    """Each category holds the commands redis-server 7.0 puts there (in another order: Redis's is its hash table's)."""
    real, ours = RawClient(both[0]), RawClient(both[1])
    cats = real.call("ACL", "CAT")
    assert ours.call("ACL", "CAT") == cats
    for raw in split_replies(cats[cats.index(b"\r\n") + 2 :]):
        category = raw.split(b"\r\n")[1].decode()
        reply = real.call("ACL", "CAT", category)
        theirs = {r.split(b"\r\n")[1].decode() for r in split_replies(reply[reply.index(b"\r\n") + 2 :])}
        reply = ours.call("ACL", "CAT", category.upper())
        mine = {r.split(b"\r\n")[1].decode() for r in split_replies(reply[reply.index(b"\r\n") + 2 :])}
        assert mine - {"client|setinfo"} == theirs, category
    real.close()
    ours.close()


# ------------------------------------------------------------------ our own server, with real clients


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    with serve(RedisService, data_dir=tmp_path) as srv:
        yield srv


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_acl_api(server: Any, protocol: int) -> None:
    host, port = server.address()
    r = redis.Redis(host=host, port=port, socket_timeout=DEADLINE, protocol=protocol, decode_responses=True)
    assert r.acl_whoami() == "default"
    assert r.acl_setuser(
        "app",
        enabled=True,
        passwords=["+secret-one", "+secret-two"],
        keys=["app:*"],
        channels=["news.*"],
        commands=["+get", "+set", "+publish", "+subscribe"],
        categories=["+@hash"],
        selectors=[("+lpush", "%W~queue:*")],
    )
    acl = r.acl_getuser("app")
    assert acl["enabled"] is True and "on" in acl["flags"]
    assert set(acl["categories"]) == {"-@all", "+@hash"}
    assert set(acl["commands"]) == {"+get", "+set", "+publish", "+subscribe"}
    assert acl["keys"] == ["~app:*"] and acl["channels"] == ["&news.*"] and len(acl["passwords"]) == 2
    assert "app" in r.acl_users() and any(line.startswith("user app on #") for line in r.acl_list())
    assert r.acl_dryrun("app", "set", "app:1", "v") == "OK"
    assert "no permissions to access the 'other' key" in r.acl_dryrun("app", "get", "other")
    assert "get" in r.acl_cat("read") and "read" in r.acl_cat()
    assert len(r.acl_genpass()) == 64 and len(r.acl_genpass(555)) == 139

    user = redis.Redis(host=host, port=port, socket_timeout=DEADLINE, protocol=protocol, decode_responses=True)
    with pytest.raises(redis.AuthenticationError):
        user.auth("secret-one", username="nobody")
    assert user.auth("secret-two", username="app") is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.acl_whoami()
    assert user.set("app:1", "v") and user.get("app:1") == "v"
    assert user.hset("app:h", "f", "v") == 1
    with pytest.raises(redis.exceptions.NoPermissionError, match="keys used as arguments"):
        user.get("other")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'lrange' command"):
        user.lrange("app:l", 0, -1)
    assert user.lpush("queue:1", "job") == 1  # the selector
    with pytest.raises(redis.exceptions.NoPermissionError, match="channels used as arguments"):
        user.publish("sports", "x")
    assert user.publish("news.today", "x") == 0
    log = r.acl_log()
    assert [e["reason"] for e in log[:3]] == ["channel", "command", "key"]
    assert log[0]["username"] == "app" and log[0]["object"] == "sports"
    assert any(e["reason"] == "auth" and e["username"] == "nobody" for e in log)
    r.acl_log_reset()
    assert r.acl_log() == []
    # Deleting the user closes its connections.
    raw = RawClient((host, port))
    assert raw.call("AUTH", "app", "secret-one") == b"+OK\r\n"
    assert r.acl_deluser("app") == 1
    assert raw.closed_by_peer()
    assert all(c["user"] == "default" for c in r.client_list())
    raw.close()
    user.close()
    r.close()


def test_hello_auth_and_client_list_show_the_user(server: Any) -> None:
    host, port = server.address()
    admin = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
    admin.acl_setuser("worker", enabled=True, passwords=["+w0rk"], keys=["*"], commands=["+@all"])
    r3 = redis.Redis(host=host, port=port, username="worker", password="w0rk", protocol=3, socket_timeout=DEADLINE)
    assert r3.acl_whoami() == b"worker"
    assert b"user=worker" in r3.execute_command("CLIENT", "INFO")
    users = [c["user"] for c in admin.client_list()]
    assert sorted(users) == ["default", "worker"]
    assert admin.execute_command("CLIENT", "KILL", "USER", "worker") == 1
    with pytest.raises(redis.ResponseError, match="No such user 'nobody'"):
        admin.execute_command("CLIENT", "KILL", "USER", "nobody")
    r3.close()
    admin.close()


def test_the_default_user_follows_requirepass(server: Any) -> None:
    host, port = server.address()
    admin = redis.Redis(host=host, port=port, socket_timeout=DEADLINE)
    assert admin.acl_getuser("default")["flags"] == ["on", "nopass"]
    admin.config_set("requirepass", "s3cret")
    assert admin.acl_getuser("default")["passwords"] == [hashlib.sha256(b"s3cret").hexdigest()]
    anonymous = RawClient((host, port))
    assert anonymous.call("PING") == b"-NOAUTH Authentication required.\r\n"
    assert anonymous.call("AUTH", "s3cret") == b"+OK\r\n" and anonymous.call("PING") == b"+PONG\r\n"
    # The default user turned off: nobody new gets in without another user.
    admin.acl_setuser("default", enabled=False)
    fresh = redis.Redis(host=host, port=port, socket_timeout=DEADLINE, password="s3cret")
    with pytest.raises(redis.AuthenticationError):
        fresh.ping()
    admin.acl_setuser("default", enabled=True, nopass=True)
    assert redis.Redis(host=host, port=port, socket_timeout=DEADLINE).ping()
    anonymous.close()
    fresh.close()
    admin.close()


def test_a_subscriber_that_loses_its_channel_is_dropped(server: Any) -> None:
    host, port = server.address()
    admin = RawClient((host, port))
    admin.call("ACL", "SETUSER", "sub", "on", "nopass", "&news.*", "&sports", "+subscribe", "+psubscribe")
    a, b = RawClient((host, port)), RawClient((host, port))
    for c in (a, b):
        assert c.call("AUTH", "sub", "x") == b"+OK\r\n"
    assert a.call("SUBSCRIBE", "sports").startswith(b"*3")
    assert b.call("PSUBSCRIBE", "news.*").startswith(b"*3")
    assert admin.call("ACL", "SETUSER", "sub", "resetchannels", "&news.*") == b"+OK\r\n"
    assert a.closed_by_peer()
    assert admin.call("PUBLISH", "news.x", "hello") == b":1\r\n"
    assert b.reply().startswith(b"*4\r\n$8\r\npmessage")
    for c in (a, b, admin):
        c.close()


def test_acl_file_save_and_load(tmp_path: Path) -> None:
    path = tmp_path / "users.acl"
    with ServiceHarness(RedisService, data_dir=tmp_path, aclfile=path) as h:
        c = h.connect()
        c.send(b"ACL SETUSER app on >pw ~app:* +get\r\nACL SAVE\r\n")
        assert c.read() == b"+OK\r\n+OK\r\n"
        text = path.read_text()
        assert "user app on #" in text and "~app:* resetchannels -@all +get" in text and "pw\n" not in text
        path.write_text(text + "user extra on nopass ~* +@read\n")
        c.send(b"ACL LOAD\r\nACL USERS\r\n")
        assert c.read() == b"+OK\r\n*3\r\n$3\r\napp\r\n$7\r\ndefault\r\n$5\r\nextra\r\n"
        path.write_text("user broken on +nosuch\n")
        c.send(b"ACL LOAD\r\nACL USERS\r\n")
        reply = c.read()
        assert reply.startswith(b"-ERR ") and b"Unknown command or category name in ACL" in reply
        assert reply.endswith(b"*3\r\n$3\r\napp\r\n$7\r\ndefault\r\n$5\r\nextra\r\n")  # nothing changed
    path.write_text("user default on >boot ~* &* +@all\nuser ops on nopass +@admin\n")
    with ServiceHarness(RedisService, data_dir=tmp_path, aclfile=path) as h:
        c = h.connect()
        c.send(b"PING\r\nAUTH boot\r\nACL USERS\r\n")
        assert c.read() == b"-NOAUTH Authentication required.\r\n+OK\r\n*2\r\n$7\r\ndefault\r\n$3\r\nops\r\n"


def test_passwords_never_reach_the_log(tmp_path: Path) -> None:
    secrets = ["first-Secret-1", "second-Secret-2", "wrong-Secret-3"]
    with capture_logs() as logs, ServiceHarness(RedisService, data_dir=tmp_path, requirepass=secrets[0]) as h:
        h.service.access_log = True
        c = h.connect()
        c.send(f"AUTH {secrets[0]}\r\nACL SETUSER u on >{secrets[1]} +@all ~*\r\n".encode())
        c.send(f"AUTH u {secrets[2]}\r\nAUTH u {secrets[1]}\r\nHELLO 3 AUTH u {secrets[2]}\r\n".encode())
        c.send(f"ACL SETUSER u <{secrets[1]}\r\nCONFIG SET requirepass {secrets[2]}\r\nACL LOG\r\n".encode())
        replies = split_replies(c.read())
        assert replies[:2] == [b"+OK\r\n", b"+OK\r\n"] and replies[3] == b"+OK\r\n"
        assert replies[2].startswith(b"-WRONGPASS") and replies[4].startswith(b"-WRONGPASS")
        assert replies[5] == b"+OK\r\n" and replies[6] == b"+OK\r\n"
        log = replies[7]
    text = repr(logs) + repr(log)
    for secret in secrets:
        assert secret not in text
    assert re.search(r"\bu\b", repr(log))


def test_hostile_rules_are_bounded(tmp_path: Path) -> None:
    """Adversarial key patterns cannot stall the checks (the glob matcher is linear)."""
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        c.send(b"ACL SETUSER evil on nopass +get " + b"~" + b"*a" * 40 + b"b\r\n")
        assert c.read() == b"+OK\r\n"
        c.send(b"AUTH evil x\r\nGET " + b"a" * 4000 + b"\r\nPING\r\n")
        assert c.read() == (
            b"+OK\r\n-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
            b"-NOPERM this user has no permissions to run the 'ping' command\r\n"
        )
        other = h.connect()
        other.send(b"PING\r\n")
        assert other.read() == b"+PONG\r\n"


def test_a_pipeline_is_checked_from_the_command_after_a_change(tmp_path: Path) -> None:
    """Rules changed by a command apply to the very next one of the same read (no fast path past them)."""
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        c.send(b"SET k v\r\nACL SETUSER default -get\r\nGET k\r\nACL SETUSER default +get\r\nGET k\r\n")
        assert c.read() == (
            b"+OK\r\n+OK\r\n-NOPERM this user has no permissions to run the 'get' command\r\n+OK\r\n$1\r\nv\r\n"
        )
        c.send(b"ACL SETUSER u on nopass +get ~a*\r\nAUTH u x\r\nGET k\r\nGET a1\r\nRESET\r\nGET k\r\n")
        assert c.read() == (
            b"+OK\r\n+OK\r\n-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
            b"$-1\r\n+RESET\r\n$1\r\nv\r\n"
        )


def test_acl_list_follows_every_change(tmp_path: Path) -> None:
    """ACL LIST lines are kept between changes; each way of changing a user shows at once."""
    with ServiceHarness(RedisService, data_dir=tmp_path) as h:
        c = h.connect()
        c.send(b"ACL LIST\r\nCONFIG SET requirepass pw\r\nACL LIST\r\nACL SETUSER default nopass -get\r\nACL LIST\r\n")
        replies = split_replies(c.read())
        assert replies[0] == b"*1\r\n$34\r\nuser default on nopass ~* &* +@all\r\n"
        digest = hashlib.sha256(b"pw").hexdigest().encode()
        line = b"user default on #%s ~* &* +@all" % digest
        assert replies[2] == b"*1\r\n$%d\r\n%s\r\n" % (len(line), line)
        assert replies[4] == b"*1\r\n$39\r\nuser default on nopass ~* &* +@all -get\r\n"
