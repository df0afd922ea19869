"""The WeCom (企业微信) 微信客服 resources, a module each: ``servicers`` (who serves a kf account,
in batches of any size), ``kf_accounts`` (the kf accounts of a corp and their contact links),
``media`` (uploading and downloading the files messages refer to), ``sessions`` (who is serving a
customer, and handing the customer on), ``customers`` (what WeCom tells of customers, in
batches of any size) and ``messages`` (pulling what customers sent, and answering them). A
client exposes each as an attribute (``wc.servicers``, ``wc.kf_accounts``, ``wc.media``,
``wc.sessions``, ``wc.customers``, ``wc.messages``). Beside them, what a tool checks before a
servicer call: ``userid_problem`` (is this a userid?) and ``over_caps`` (does this sync target
fit one kf account?)."""

from __future__ import annotations

from .customers import CustomerRequestCallback, Customers
from .kf_accounts import WeComKfAccounts
from .media import Media
from .messages import Messages
from .servicers import (
    MAX_DEPARTMENTS_PER_KF_ACCOUNT,
    MAX_SERVICERS_PER_KF_ACCOUNT,
    Servicers,
    over_caps,
    userid_problem,
)
from .sessions import Sessions

__all__ = [
    "MAX_DEPARTMENTS_PER_KF_ACCOUNT",
    "MAX_SERVICERS_PER_KF_ACCOUNT",
    "CustomerRequestCallback",
    "Customers",
    "Media",
    "Messages",
    "Servicers",
    "Sessions",
    "WeComKfAccounts",
    "over_caps",
    "userid_problem",
]
