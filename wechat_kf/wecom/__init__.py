"""The WeCom (企业微信) 微信客服 resources, a module each: ``servicers`` (who serves a kf account,
in batches of any size) and ``kf_accounts`` (the kf accounts of a corp). A client exposes each as
an attribute (``wc.servicers``, ``wc.kf_accounts``)."""

from __future__ import annotations

from .kf_accounts import WeComKfAccounts
from .servicers import MAX_SERVICERS_PER_KF_ACCOUNT, Servicers

__all__ = ["MAX_SERVICERS_PER_KF_ACCOUNT", "Servicers", "WeComKfAccounts"]
