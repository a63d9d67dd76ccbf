"""The HTTP service: HTTP/1.1 on the framework (h11 parses), serving the mail inbox API and page, metrics, health."""

from linechat.services.http.messages import EventStream, Request, Response, Router, json_response, text_response
from linechat.services.http.protocol import HttpProtocol
from linechat.services.http.service import HttpService, HttpSettings

__all__ = [
    "EventStream",
    "HttpProtocol",
    "HttpService",
    "HttpSettings",
    "Request",
    "Response",
    "Router",
    "json_response",
    "text_response",
]
