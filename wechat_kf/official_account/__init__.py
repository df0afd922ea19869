"""The Official Account (公众号) resources, a module each: ``kf_accounts`` (customer-service
accounts), ``sessions`` (who serves whom, the waiting queue, the chat records) and ``messages``
(customer-service messages and the typing indicator). A client exposes each as an attribute
(``oa.kf_accounts``, ``oa.sessions``, ``oa.messages``)."""

from __future__ import annotations

from .kf_accounts import KfAccounts
from .messages import OfficialAccountMessages
from .sessions import MessageRecords, OfficialAccountSessions

__all__ = ["KfAccounts", "MessageRecords", "OfficialAccountMessages", "OfficialAccountSessions"]
