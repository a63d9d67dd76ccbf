"""An ordinary pyftpdlib FTP server, written as its documentation shows (it imports asynchat).

Run by tests/framework/test_asynchat_pyftpdlib.py through
``python -m linechat.asynchat run``; nothing here knows about linechat.
Usage: ftp_server.py MODE ROOT [CERTFILE]; MODE is plain, tls or throttled.
Prints one JSON line (the port, and which asynchat module pyftpdlib got),
then serves until killed.
"""

import json
import sys

import pyftpdlib.handlers
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler
from pyftpdlib.servers import FTPServer

mode, root = sys.argv[1], sys.argv[2]
authorizer = DummyAuthorizer()
authorizer.add_user("user", "secret", root, perm="elradfmwMT")

if mode == "tls":
    from pyftpdlib.handlers import TLS_FTPHandler

    handler = TLS_FTPHandler
    handler.certfile = sys.argv[3]
    handler.tls_control_required = True
    handler.tls_data_required = True
elif mode == "throttled":
    handler = FTPHandler
    dtp = ThrottledDTPHandler
    dtp.read_limit = 100 * 1024  # bytes a second, each way
    dtp.write_limit = 100 * 1024
    handler.dtp_handler = dtp
else:
    handler = FTPHandler
handler.authorizer = authorizer

server = FTPServer(("127.0.0.1", 0), handler)
used = pyftpdlib.handlers.asynchat
print(json.dumps({"port": server.address[1], "asynchat": used.__name__, "file": used.__file__}), flush=True)
server.serve_forever()
