"""The SMTP service: an ESMTP mail sink (RFC 5321) that stores accepted mail in Maildirs."""

from linechat.services.smtp.inbox import Inbox, Query, StoredMessage
from linechat.services.smtp.service import Envelope, SmtpProtocol, SmtpService, SmtpSettings, format_reply

__all__ = ["Envelope", "Inbox", "Query", "SmtpProtocol", "SmtpService", "SmtpSettings", "StoredMessage", "format_reply"]
