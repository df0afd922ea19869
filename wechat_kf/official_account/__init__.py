"""The Official Account (公众号) resources, a module each: ``kf_accounts`` (customer-service
accounts). A client exposes each as an attribute (``oa.kf_accounts``)."""

from __future__ import annotations

from .kf_accounts import KfAccounts

__all__ = ["KfAccounts"]
