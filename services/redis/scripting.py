"""Lua scripting: EVAL, EVALSHA, their _RO forms and SCRIPT (Redis's eval.c and script_lua.c), on lupa's Lua 5.1.

One Lua 5.1 interpreter per server (``lupa.lua51``, the engine Redis
embeds) holds the compiled scripts by SHA1.  A script runs in a sandbox: its
globals are a read-only view of an environment that has Lua's base, string,
table, math and coroutine libraries without ``loadfile``, ``dofile``,
``print``, ``getfenv``/``setfenv``, ``module`` or ``require``, and no ``os``,
``io``, ``debug`` or ``package``; reading a global that does not exist or
writing any is an error, with Redis 7.0's messages.

``redis.call`` runs a command from the command table on the calling
connection itself (its database, a RESP2 reply shape unless the script
called ``redis.setresp(3)``), refusing what the table marks ``noscript``
and, for ``EVAL_RO``, ``write``.  The handler's RESP reply is turned into Lua
values by Redis's rules, and the script's result back into RESP the same
way.  A script's changes reach the append-only file (and WATCH) through the
handlers' one change funnel, wrapped in ``MULTI``/``EXEC``: what is
recorded is the effects, so replay does not run Lua at all.

A runaway script: a Lua count hook runs every 100,000 instructions.  Past
``busy_reply_threshold`` milliseconds (Redis's ``lua-time-limit``) the hook
lets the reactor serve other connections for a moment each time (the
caller's own input is paused): they are answered ``-BUSY`` except for the
commands the table marks ``allow_busy`` (``SCRIPT KILL``, ``MULTI``...).
``SCRIPT KILL`` makes the hook raise an error in the script, which keeps
being raised at every line so ``pcall`` cannot swallow it; a script that has
already written is ``UNKILLABLE``, as in Redis.  No expiry runs while a
script does, and keys expire by the time the script started.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING, Any

from linechat.services.redis.base import ClientContext, int_arg
from linechat.services.redis.connection import SERVER_VERSION
from linechat.services.redis.lua_cmsgpack import MsgpackError as LuaLibraryError
from linechat.services.redis.lua_cmsgpack import msgpack_library
from linechat.services.redis.lua_struct import struct_library
from linechat.services.redis.resp import INT64_MAX, INT64_MIN, RESP2, RESP3, Dialect, RespError, bulk, error, integer
from linechat.services.redis.table import CommandDef, KeySpec, redis_command

if TYPE_CHECKING:
    from linechat.services.redis.service import RedisService

__all__ = ["ScriptCommands", "ScriptEngine"]

NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."
BUSY = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
KILLED = "ERR Script killed by user with SCRIPT KILL..."
# What redis.call answers when the script's user may not run the command (ACL).
_SCRIPT_NOPERM = {
    "command": b"ERR The user executing the script can't run this command or subcommand",
    "key": b"ERR The user executing the script can't access at least one of the keys mentioned in the command "
    b"arguments",
    "channel": b"ERR The user executing the script can't publish to the channel mentioned in the command",
}
_HOOK_EVERY = 100_000  # instructions between two looks at the clock (as Redis)
_SERVE_EVERY = 0.01  # seconds between two turns of the reactor while busy

# The Lua side: the sandbox, the redis table and the runner.  Written once per
# interpreter; the Python callables come in as arguments.
_PRELUDE = r"""
local py_call, py_pcall, py_tick, py_log, py_setresp, py_sha1, py_libs, lua_G = ...
local debug, setfenv, loadstring, xpcall, type, tostring, error, rawget, setmetatable, select =
      debug, setfenv, loadstring, xpcall, type, tostring, error, rawget, setmetatable, select
local readonly_mt = {__newindex = function() error("Attempt to modify a readonly table", 2) end}
local protected = setmetatable({}, {__mode = "k"})  -- the read-only proxies (rawset must not reach them)
local function readonly(t)
  local proxy = setmetatable({}, {__index = t, __newindex = readonly_mt.__newindex, __metatable = false})
  protected[proxy] = true
  return proxy
end

local env = {}
for _, name in ipairs({"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawset",
                       "select", "setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack",
                       "xpcall", "_VERSION", "loadstring", "load", "gcinfo", "collectgarbage"}) do
  env[name] = lua_G[name]
end
for _, name in ipairs({"string", "table", "math", "coroutine"}) do
  local copy = {}
  for k, v in pairs(lua_G[name]) do copy[k] = v end
  env[name] = readonly(copy)
end

-- redis.call and redis.pcall are the Python callables themselves: C functions
-- to Lua, so "return redis.call(...)" keeps the script's frame (and line) for
-- errors.  redis.call fails by raising, which Lua sees as a userdata; pcall and
-- xpcall hand scripts its text instead, as Redis's string.
local lua_pcall, lua_xpcall, tostring_ = pcall, xpcall, tostring
local function as_text(ok, ...)
  if not ok then
    local e = ...
    if type(e) == "userdata" then e = tostring_(e) end
    return false, e
  end
  return true, ...
end
env.pcall = function(f, ...) return as_text(lua_pcall(f, ...)) end
env.xpcall = function(f, h)
  return lua_xpcall(f, function(e)
    if type(e) == "userdata" then e = tostring_(e) end
    return h(e)
  end)
end
local redis = {}
redis.call = py_call
redis.pcall = py_pcall
redis.error_reply = function(message)
  if type(message) ~= "string" then return {err = "ERR wrong number or type of arguments"} end
  -- "-CODE msg" keeps its code, anything else gets ERR (Redis's luaPushErrorBuff).
  if message:sub(1, 1) ~= "-" then message = "-" .. message end
  if not message:find(" ", 1, true) then return {err = "ERR " .. message:sub(2)} end
  return {err = message:sub(2)}
end
redis.status_reply = function(message)
  if type(message) ~= "string" then return {err = "ERR wrong number or type of arguments"} end
  return {ok = message}
end
redis.sha1hex = py_sha1
redis.log = function(level, ...)
  if select("#", ...) < 1 then error("redis.log() requires two arguments or more.", 2) end
  py_log(level, ...)
end
redis.setresp = function(version) py_setresp(version) end
redis.replicate_commands = function() return true end
redis.set_repl = function() end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = "@VERSION@", @VERSION_NUM@
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
env.redis = readonly(redis)
env.bit = readonly(py_libs.bit)
env.cjson = readonly(py_libs.cjson)
env.cmsgpack = readonly(py_libs.cmsgpack)
env.struct = readonly(py_libs.struct)
local lua_rawset = rawset
env.rawset = function(t, k, v)
  if protected[t] then error("Attempt to modify a readonly table", 2) end
  return lua_rawset(t, k, v)
end
-- Strings' methods come from the read-only copy; their metatable cannot be reached to change it.
local string_mt = getmetatable("")
string_mt.__index = env.string
string_mt.__metatable = readonly({__index = env.string})

-- The globals scripts see: read-only, and reading a missing one is an error.
local globals = setmetatable({}, {
  __index = function(_, key)
    local value = env[key]
    if value == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(key) .. "'", 2)
    end
    return value
  end,
  __newindex = readonly_mt.__newindex,
  __metatable = false,
})
env._G = globals
protected[globals] = true

-- Code loaded by a script gets the script's globals (not the interpreter's),
-- and only as source text: precompiled chunks could break the interpreter.
local function sandboxed(fn, message)
  if fn then setfenv(fn, globals) end
  return fn, message
end
env.loadstring = function(text, name)
  if type(text) == "string" and text:byte(1) == 27 then return nil, "binary chunks are not allowed" end
  return sandboxed(loadstring(text, name))
end
env.load = function(reader, name)
  local first = true
  local function source()
    local piece = reader()
    if first and type(piece) == "string" and piece:byte(1) == 27 then error("binary chunks are not allowed", 0) end
    first = false
    return piece
  end
  return sandboxed(lua_G.load(source, name))
end

local function handler(err)
  -- The line of the user's code where the error was raised (Redis's error handler).
  local line
  for level = 2, 50 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.source == "@user_script" then line = info.currentline break end
  end
  if type(err) == "table" then
    err = rawget(err, "err")
    if type(err) ~= "string" then err = "ERR unknown error" end
  elseif type(err) == "userdata" then
    err = tostring(err)  -- raised by redis.call: already a Redis error line
    if err:sub(1, 8) == "LUA_LIB " then
      -- A library's error (cmsgpack, struct, cjson), placed at the script's line as the C libraries' luaL_error does.
      err = "ERR user_script:" .. tostring(line or "?") .. ": " .. err:sub(9)
    end
  else
    err = "ERR " .. tostring(err)
  end
  return {err, line}
end

local killed = false
local function hook()
  if killed or py_tick() then
    killed = true
    debug.sethook(hook, "l")  -- again at every line, so pcall cannot swallow it
    local info = debug.getinfo(2, "S")
    if info and info.source == "@user_script" then error({err = "KILLED"}, 0) end
  end
end

local function compile(body)
  if body:byte(1) == 27 then return nil, "user_script: binary chunks are not allowed" end
  local fn, message = loadstring(body, "@user_script")
  if not fn then return nil, message end
  setfenv(fn, globals)
  return fn, false
end

local function run(fn, keys, argv)
  env.KEYS, env.ARGV = keys, argv
  killed = false
  debug.sethook(hook, "", @HOOK_EVERY@)
  local ok, result = xpcall(fn, handler)
  debug.sethook()
  killed = false
  env.KEYS, env.ARGV = nil, nil
  return ok, result
end

return compile, run
"""


def _sha1(body: bytes) -> bytes:
    return hashlib.sha1(body).hexdigest().encode()


class CallError(Exception):
    """redis.call's error reply, raised into Lua (its text is what scripts see)."""


class ScriptEngine:
    """The server's Lua interpreter, its script cache, and the state of the script running now."""

    def __init__(self, server: RedisService) -> None:
        from lupa.lua51 import LuaRuntime, lua_type

        self.server = server
        self.lua = LuaRuntime(encoding=None, unpack_returned_tuples=True, register_eval=False, register_builtins=False)
        self._lua_type = lua_type
        self.scripts: dict[bytes, Any] = {}
        self.caller: ClientContext | None = None  # the connection whose script is running
        self.readonly = False
        self.dialect: Dialect = RESP2
        self.wrote = False  # the running script called a write command (SCRIPT KILL refuses then)
        self.kill_requested = False
        self.busy = False  # past the time limit: other clients get BUSY
        self.started = 0.0
        self.started_ms = 0
        self._last_serve = 0.0
        version = SERVER_VERSION.decode()
        number = sum(int(part) << shift for part, shift in zip(version.split("."), (16, 8, 0), strict=True))
        prelude = (
            _PRELUDE.replace("@HOOK_EVERY@", str(_HOOK_EVERY))
            .replace("@VERSION_NUM@", str(number))
            .replace("@VERSION@", version)
            .encode()
        )
        compile_fn, run_fn = self.lua.execute(
            prelude,
            self._raising_call,
            self._protected_call,
            self._tick,
            self._log,
            self._setresp,
            self._sha1hex,
            self._libraries(),
            self.lua.globals(),
        )
        self._compile = compile_fn
        self._run = run_fn
        self._table_from = self.lua.table_from

    def _libraries(self) -> Any:
        """The bit, cjson, cmsgpack and struct libraries Redis bundles, written in Python."""
        table = self.lua.table_from

        def tobit(x: Any) -> int:
            n = int(x) & 0xFFFFFFFF
            return n - (1 << 32) if n & 0x80000000 else n

        def fold(op: Any) -> Any:
            def apply(first: Any, *rest: Any) -> int:
                acc = int(first) & 0xFFFFFFFF
                for value in rest:
                    acc = op(acc, int(value) & 0xFFFFFFFF)
                return tobit(acc)

            return apply

        def rol(x: Any, n: Any) -> int:
            v, k = int(x) & 0xFFFFFFFF, int(n) & 31
            return tobit((v << k) | (v >> (32 - k)))

        def tohex(x: Any, n: Any = 8) -> bytes:
            width = int(n)
            digits = format(int(x) & 0xFFFFFFFF, "08x" if width >= 0 else "08X")[-abs(width) or 8 :]
            return digits.encode()

        bit = {
            b"tobit": tobit,
            b"bnot": lambda x: tobit(~int(x)),
            b"band": fold(lambda a, b: a & b),
            b"bor": fold(lambda a, b: a | b),
            b"bxor": fold(lambda a, b: a ^ b),
            b"lshift": lambda x, n: tobit(int(x) << (int(n) & 31)),
            b"rshift": lambda x, n: tobit((int(x) & 0xFFFFFFFF) >> (int(n) & 31)),
            b"arshift": lambda x, n: tobit(tobit(x) >> (int(n) & 31)),
            b"rol": rol,
            b"ror": lambda x, n: rol(x, 32 - (int(n) & 31)),
            b"bswap": lambda x: tobit(int.from_bytes((int(x) & 0xFFFFFFFF).to_bytes(4, "little"), "big")),
            b"tohex": tohex,
        }
        cjson = {b"encode": self._json_encode, b"decode": self._json_decode}
        cmsgpack = msgpack_library(table, self._lua_type)
        libraries = {b"bit": table(bit), b"cjson": table(cjson), b"cmsgpack": table(cmsgpack)}
        return table({**libraries, b"struct": table(struct_library())})

    def _to_python(self, value: Any, depth: int = 0) -> Any:
        if type(value) is bytes:
            return value.decode("utf-8", "surrogateescape")
        if value is None or type(value) in (bool, int, float) or depth > 100:
            return value
        if self._lua_type(value) != "table":
            raise CallError("ERR Cannot serialise " + str(self._lua_type(value)))
        keys = list(value.keys())
        if keys and all(type(k) in (int, float) and k >= 1 and k == int(k) for k in keys):
            # An array, nil holes as null, unless too sparse (lua_cjson's encode_sparse_ratio 2, safe 10).
            top = int(max(keys))
            if top > 2 * len(keys) and top > 10:
                raise LuaLibraryError("Cannot serialise table: excessively sparse array")
            present = {int(k) for k in keys}
            return [self._to_python(value[i], depth + 1) if i in present else None for i in range(1, top + 1)]
        return {
            (k.decode("utf-8", "surrogateescape") if type(k) is bytes else str(k)): self._to_python(v, depth + 1)
            for k, v in value.items()
        }

    def _json_encode(self, value: Any) -> bytes:
        import json

        return json.dumps(self._to_python(value), separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogateescape"
        )

    def _json_decode(self, text: Any) -> Any:
        import json

        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise CallError(f"ERR Expected value but found invalid token: {exc}") from None

        def to_lua(item: Any) -> Any:
            if isinstance(item, str):
                return item.encode("utf-8", "surrogateescape")
            if isinstance(item, list):
                return self.lua.table_from([to_lua(i) for i in item])
            if isinstance(item, dict):
                return self.lua.table_from({k.encode(): to_lua(v) for k, v in item.items()})
            return item

        return to_lua(data)

    # ------------------------------------------------------------------ cache

    def load(self, body: bytes) -> bytes:
        """Compile *body* (if not cached) and return its SHA1; RespError on a syntax error."""
        sha = _sha1(body)
        if sha not in self.scripts:
            fn, message = self._compile(body)
            if fn is None:
                text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
                raise RespError(f"ERR Error compiling script (new function): {text}")
            self.scripts[sha] = fn
        return sha

    def flush(self) -> None:
        """Forget every cached script."""
        self.scripts.clear()

    # ------------------------------------------------------------------ running

    def run(
        self, caller: ClientContext, sha: bytes, fn: Any, keys: list[bytes], argv: list[bytes], readonly: bool
    ) -> bytes:
        """Run a compiled script for *caller*; return its RESP reply."""
        server = self.server
        saved = (caller.db, caller.dbindex, caller.argv, caller.dialect, caller.null, caller.null_array)
        self.caller = caller
        self.readonly = readonly
        self.dialect = RESP2
        self.wrote = False
        self.kill_requested = False
        self.busy = False
        self.started = self._last_serve = time.monotonic()
        self.started_ms = server.now_ms()
        server.script = self
        caller.in_script = True
        aof = server.aof
        if aof is not None:
            aof.begin()
        try:
            with server.blocking.atomic():  # blocking commands answer at once inside a script
                ok, result = self._run(fn, self._table_from(keys), self._table_from(argv))
        finally:
            if aof is not None:
                aof.end()
            caller.in_script = False
            caller.db, caller.dbindex, caller.argv, caller.dialect, caller.null, caller.null_array = saved
            server.script = None
            self.caller = None
            if self.busy:
                self.busy = False
                server.busy = False
                caller.resume("script")
        reply_dialect = caller.dialect
        if not ok:
            message, line = result[1], result[2]
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
            if text == "KILLED":
                text = KILLED
            where = f", on @user_script:{line}." if line is not None else "."
            return error(f"{text} script: {sha.decode()}{where}")
        return self._to_resp(result, reply_dialect, 0)

    def _to_resp(self, value: Any, dialect: Dialect, depth: int) -> bytes:
        """A Lua value as a RESP reply, by Redis's rules (numbers truncated, false as null, tables...)."""
        kind = type(value)
        if kind is bytes:
            return b"$%d\r\n%s\r\n" % (len(value), value)
        if kind is int:
            return integer(value) if INT64_MIN <= value <= INT64_MAX else integer(INT64_MIN)
        if kind is float:
            if math.isnan(value) or math.isinf(value) or not INT64_MIN <= value < 2.0**63:
                return integer(INT64_MIN)
            return integer(int(value))
        if kind is bool:
            # The script's protocol (redis.setresp) decides, not the client's.
            if self.dialect is RESP3:
                return b"#t\r\n" if value else b"#f\r\n"
            return b":1\r\n" if value else dialect.null
        if value is None or self._lua_type(value) != "table" or depth > 100:
            return dialect.null
        err = value[b"err"]
        if type(err) is bytes:
            return b"-" + err.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
        ok = value[b"ok"]
        if type(ok) is bytes:
            return b"+" + ok.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
        double = value[b"double"]
        if type(double) in (int, float):
            text = b"%.17g" % double
            return b",%s\r\n" % text if dialect is RESP3 else bulk(text)
        mapping = value[b"map"]
        if mapping is not None and self._lua_type(mapping) == "table":
            items = list(mapping.items())
            return dialect.map_header(len(items)) + b"".join(
                self._to_resp(k, dialect, depth + 1) + self._to_resp(v, dialect, depth + 1) for k, v in items
            )
        members = value[b"set"]
        if members is not None and self._lua_type(members) == "table":
            keys = list(members.keys())
            return dialect.set_head % len(keys) + b"".join(self._to_resp(k, dialect, depth + 1) for k in keys)
        out = []
        i = 1
        while True:
            item = value[i]
            if item is None:
                break
            out.append(self._to_resp(item, dialect, depth + 1))
            i += 1
        return b"*%d\r\n" % len(out) + b"".join(out)

    # ------------------------------------------------------------------ called from Lua

    def _raising_call(self, *args: Any) -> Any:
        """redis.call: the command's reply as a Lua value; an error reply is raised as a Lua error."""
        value, failed = self._call(args)
        if failed:
            raise CallError(value.decode("utf-8", "replace"))
        return value

    def _protected_call(self, *args: Any) -> Any:
        """redis.pcall: the command's reply as a Lua value, an error reply as a table {err=...}."""
        value, failed = self._call(args)
        if failed:
            return self._table_from({b"err": value})
        return value

    def _call(self, args: tuple[Any, ...]) -> tuple[Any, bool]:
        """Run one command for the script; return (value, False) or (error line, True)."""
        caller = self.caller
        assert caller is not None
        if not args:
            return b"ERR Please specify at least one argument for this redis lib call", True
        argv: list[bytes] = []
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                argv.append(arg)
            elif kind is int:
                argv.append(b"%d" % arg)
            elif kind is float:
                argv.append(_fmt(arg))
            else:
                return b"ERR Lua redis lib command arguments must be strings or integers", True
        spec = caller.table.get(argv[0].upper().decode("latin-1"))
        if spec is None or spec.func is None:
            return b"ERR Unknown Redis command called from script", True
        target: CommandDef | None = spec
        if spec.subcommands and len(argv) > 1:
            target = spec.subcommands.get(argv[1].upper().decode("latin-1"))
        if (target is not None and "noscript" in target.flags) or "noscript" in spec.flags:
            return b"ERR This Redis command is not allowed from script", True
        if not spec.accepts(len(argv) - 1) or (spec.handler_max is not None and len(argv) - 1 > spec.handler_max):
            return b"ERR Wrong number of args calling Redis command from script", True
        if not caller.user.unrestricted:
            denial = caller.acl_check(spec, argv, "lua")
            if denial is not None:
                return _SCRIPT_NOPERM[denial.reason], True
        if spec.write:
            if self.readonly:
                return b"ERR Write commands are not allowed from read-only scripts.", True
            self.wrote = True
        if spec.write or (target is not None and target.write):
            refusal = caller.server.write_refusal()
            if refusal is not None:  # the append-only file cannot be written: after the read-only check, as in Redis
                return refusal, True
        dialect = self.dialect
        caller.argv = argv
        caller.dialect = dialect
        caller.null = dialect.null
        caller.null_array = dialect.null_array
        monitoring = caller.server.monitoring
        shown = target or spec
        if monitoring.monitors and "skip_monitor" not in shown.flags and "admin" not in shown.flags:
            monitoring.feed(caller.dbindex, b"lua", argv)
        try:
            reply = spec.func(caller, *argv[1:])
        except RespError as exc:
            return str(exc).encode("latin-1", "replace"), True
        if reply is None:
            return None, False
        if reply[:1] == b"-":
            return reply[1:-2], True
        return self._from_resp(reply, 0)[0], False

    def _from_resp(self, data: bytes, pos: int) -> tuple[Any, int]:
        """One RESP reply at *pos* as a Lua value (Redis's conversion), and where the next one starts."""
        kind = data[pos]
        nl = data.index(b"\r\n", pos)
        line = data[pos + 1 : nl]
        pos = nl + 2
        if kind == 36:  # '$'
            size = int(line)
            if size < 0:
                return False, pos
            return data[pos : pos + size], pos + size + 2
        if kind == 58:  # ':'
            return int(line), pos
        if kind == 43:  # '+'
            return self._table_from({b"ok": line}), pos
        if kind == 45:  # '-'
            return self._table_from({b"err": line}), pos
        if kind in (42, 126, 62):  # '*', '~', '>'
            count = int(line)
            if count < 0:
                return False, pos
            items = []
            for _ in range(count):
                item, pos = self._from_resp(data, pos)
                items.append(item)
            if kind == 126 and self.dialect is RESP3:
                return self._table_from({b"set": self._table_from(dict.fromkeys(items, True))}), pos
            return self._table_from(items), pos
        if kind == 37:  # '%'
            pairs = {}
            for _ in range(int(line)):
                key, pos = self._from_resp(data, pos)
                val, pos = self._from_resp(data, pos)
                pairs[key] = val
            return self._table_from({b"map": self._table_from(pairs)}), pos
        if kind == 95:  # '_'
            return None, pos
        if kind == 35:  # '#'
            return line == b"t", pos
        if kind == 44:  # ','
            return self._table_from({b"double": float(line)}), pos
        if kind == 40:  # '('
            return self._table_from({b"big_number": line}), pos
        if kind == 61:  # '='
            size = int(line)
            text = data[pos : pos + size]
            verbatim = self._table_from({b"format": text[:3], b"string": text[4:]})
            return self._table_from({b"verbatim_string": verbatim}), pos + size + 2
        raise ValueError(f"unexpected reply type {chr(kind)!r}")

    def _sha1hex(self, *args: Any) -> bytes:
        if len(args) != 1:
            raise CallError("ERR wrong number of arguments")
        value = args[0]
        if type(value) is int:
            value = b"%d" % value
        elif type(value) is float:
            value = _fmt(value)
        elif type(value) is not bytes:
            value = b""
        return _sha1(value)

    def _log(self, level: Any, *parts: Any) -> None:
        text = " ".join(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in parts)
        log = self.server.log
        {0: log.debug, 1: log.debug, 2: log.info}.get(level, log.warning)("script_log", message=text)

    def _setresp(self, version: Any) -> None:
        if version == 2:
            self.dialect = RESP2
        elif version == 3:
            self.dialect = RESP3
        else:
            raise CallError("ERR RESP version must be 2 or 3.")

    def _tick(self) -> bool:
        """The count hook: past the time limit, serve other clients (BUSY) now and then; True to kill."""
        if self.kill_requested:
            return True
        server = self.server
        now = time.monotonic()
        if now - self.started < server.busy_threshold:
            return False
        if not self.busy:
            self.busy = True
            server.busy = True
            server.log.warning("script_busy", threshold_ms=int(server.busy_threshold * 1000))
            if self.caller is not None:
                self.caller.pause("script")
        if now - self._last_serve >= _SERVE_EVERY:
            self._last_serve = now
            server.reactor.run_once(0)
        return self.kill_requested


def _fmt(number: float) -> bytes:
    """A Lua number as Redis turns it into an argument: an integer if it is one, else 17 digits."""
    if number == int(number) and INT64_MIN <= number <= INT64_MAX:
        return b"%d" % int(number)
    return b"%.17g" % number


_KEYNUM = [KeySpec(("RW", "access", "update"), 2, keynum=(0, 1, 1))]
_KEYNUM_NOTE = "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE"
_KEYNUM_RO_NOTE = "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS"


class ScriptCommands(ClientContext):
    """EVAL and friends, and SCRIPT."""

    def _engine(self) -> ScriptEngine:
        return self.server.scripting()

    def _eval(self, sha: bytes | None, body: bytes | None, numkeys: bytes, args: tuple[bytes, ...], ro: bool) -> bytes:
        count = int_arg(numkeys)
        if count > len(args):
            raise RespError("ERR Number of keys can't be greater than number of args")
        if count < 0:
            raise RespError("ERR Number of keys can't be negative")
        engine = self._engine()
        if body is not None:
            sha = engine.load(body)
        assert sha is not None
        fn = engine.scripts.get(sha.lower())
        if fn is None:
            raise RespError(NOSCRIPT)
        monitoring = self.server.monitoring
        if monitoring.monitors:
            # EVAL is shown before the commands the script runs (the table marks it skip_monitor), as redis-server does.
            monitoring.feed(self.dbindex, self.addr().encode(), self.argv)
        return engine.run(self, sha.lower(), fn, list(args[:count]), list(args[count:]), ro)

    @redis_command(
        "EVAL",
        arity=-3,
        flags="noscript stale skip_monitor no_mandatory_keys",
        keys=[KeySpec(("RW", "access", "update"), 2, keynum=(0, 1, 1), notes=_KEYNUM_NOTE)],
        group="scripting",
    )
    def cmd_eval(self, script: bytes, numkeys: bytes, *args: bytes) -> bytes:
        """Run a Lua script with keys and arguments."""
        return self._eval(None, script, numkeys, args, False)

    @redis_command(
        "EVALSHA",
        arity=-3,
        flags="noscript stale skip_monitor no_mandatory_keys",
        keys=_KEYNUM,
        group="scripting",
    )
    def cmd_evalsha(self, sha: bytes, numkeys: bytes, *args: bytes) -> bytes:
        """Run a cached Lua script by its SHA1."""
        return self._eval(sha, None, numkeys, args, False)

    @redis_command(
        "EVAL_RO",
        arity=-3,
        flags="readonly noscript stale skip_monitor no_mandatory_keys",
        keys=[KeySpec(("RO", "access"), 2, keynum=(0, 1, 1), notes=_KEYNUM_RO_NOTE)],
        group="scripting",
    )
    def cmd_eval_ro(self, script: bytes, numkeys: bytes, *args: bytes) -> bytes:
        """Run a Lua script that may not write."""
        return self._eval(None, script, numkeys, args, True)

    @redis_command(
        "EVALSHA_RO",
        arity=-3,
        flags="readonly noscript stale skip_monitor no_mandatory_keys",
        keys=[KeySpec(("RO", "access"), 2, keynum=(0, 1, 1))],
        group="scripting",
    )
    def cmd_evalsha_ro(self, sha: bytes, numkeys: bytes, *args: bytes) -> bytes:
        """Run a cached Lua script that may not write."""
        return self._eval(sha, None, numkeys, args, True)

    @redis_command("SCRIPT", arity=-2, group="scripting")
    def cmd_script(self, sub: bytes, *args: bytes) -> bytes:
        """Container of the SCRIPT subcommands."""
        return self.run_subcommand("SCRIPT", sub, args)  # type: ignore[no-any-return]

    @redis_command(
        "SCRIPT|LOAD",
        arity=3,
        flags="noscript stale",
        group="scripting",
        tips="request_policy:all_nodes response_policy:all_succeeded",
    )
    def cmd_script_load(self, script: bytes) -> bytes:
        """Compile and cache a script; reply with its SHA1."""
        return bulk(self._engine().load(script))

    @redis_command(
        "SCRIPT|EXISTS",
        arity=-3,
        flags="noscript",
        group="scripting",
        tips="request_policy:all_shards response_policy:agg_logical_and",
    )
    def cmd_script_exists(self, sha: bytes, *more: bytes) -> bytes:
        """Whether each SHA1 names a cached script (1 or 0)."""
        scripts = self._engine().scripts
        return b"*%d\r\n" % (1 + len(more)) + b"".join(
            b":1\r\n" if s.lower() in scripts else b":0\r\n" for s in (sha, *more)
        )

    @redis_command(
        "SCRIPT|FLUSH",
        arity=-2,
        flags="noscript",
        group="scripting",
        tips="request_policy:all_nodes response_policy:all_succeeded",
    )
    def cmd_script_flush(self, *mode: bytes) -> bytes:
        """Forget every cached script (ASYNC and SYNC do the same here)."""
        if len(mode) > 1 or (mode and mode[0].upper() not in (b"ASYNC", b"SYNC")):
            raise RespError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
        self._engine().flush()
        return b"+OK\r\n"

    @redis_command(
        "SCRIPT|KILL",
        arity=2,
        flags="noscript allow_busy",
        group="scripting",
        tips="request_policy:all_shards response_policy:one_succeeded",
    )
    def cmd_script_kill(self) -> bytes:
        """Stop the running script, if it has not written anything."""
        engine = self.server.script
        if engine is None:
            raise RespError("NOTBUSY No scripts in execution right now.")
        if engine.wrote:
            raise RespError(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either "
                "wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."
            )
        engine.kill_requested = True
        return b"+OK\r\n"
