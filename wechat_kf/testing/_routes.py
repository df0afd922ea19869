"""Every endpoint FakeWeChat serves: (method, path) -> who may call it and its handler. A
handler takes the World, the caller (the Official Account or corp whose token came, None for
the token endpoints) and the request, and returns the JSON body or a whole :class:`Reply`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from . import (
    _official,
    _official_sessions,
    _platform_api,
    _token_api,
    _wecom,
    _wecom_kf,
    _wecom_messages,
)
from ._faults import Reply, Request
from ._state import World

__all__ = ["ROUTES", "Handler", "Route"]

Handler = Callable[[World, Any, Request], dict[str, Any] | Reply]


@attrs.frozen
class Route:
    """Who may call an endpoint ("token": anyone; "oa" / "wecom": a token of that platform)."""

    platform: str
    handler: Handler


#: Every endpoint the fake serves, built once.
ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/cgi-bin/stable_token"): Route("token", _token_api.stable_token),
    ("GET", "/cgi-bin/token"): Route("token", _token_api.classic_token),
    ("GET", "/cgi-bin/gettoken"): Route("token", _token_api.wecom_token),
    ("POST", "/cgi-bin/component/api_component_token"): Route(
        "token", _platform_api.component_token
    ),
    ("POST", "/cgi-bin/component/api_authorizer_token"): Route(
        "token", _platform_api.authorizer_token
    ),
    ("POST", "/cgi-bin/service/get_suite_token"): Route("token", _platform_api.suite_token),
    ("POST", "/cgi-bin/service/get_corp_token"): Route("token", _platform_api.corp_token),
    ("GET", "/cgi-bin/customservice/getkflist"): Route("oa", _official.kf_list),
    ("GET", "/cgi-bin/customservice/getonlinekflist"): Route("oa", _official.kf_online),
    ("POST", "/customservice/kfaccount/add"): Route("oa", _official.kf_add),
    ("POST", "/customservice/kfaccount/update"): Route("oa", _official.kf_update),
    ("POST", "/customservice/kfaccount/del"): Route("oa", _official.kf_delete),
    ("GET", "/customservice/kfaccount/del"): Route("oa", _official.kf_delete),
    ("POST", "/customservice/kfaccount/inviteworker"): Route("oa", _official.kf_invite),
    ("POST", "/customservice/kfaccount/uploadheadimg"): Route("oa", _official.kf_avatar),
    ("POST", "/cgi-bin/kf/servicer/add"): Route("wecom", _wecom.servicer_add),
    ("POST", "/cgi-bin/kf/servicer/del"): Route("wecom", _wecom.servicer_delete),
    ("GET", "/cgi-bin/kf/servicer/list"): Route("wecom", _wecom.servicer_list),
    ("POST", "/cgi-bin/kf/account/list"): Route("wecom", _wecom.account_list),
    ("POST", "/cgi-bin/kf/account/add"): Route("wecom", _wecom_kf.account_add),
    ("POST", "/cgi-bin/kf/account/del"): Route("wecom", _wecom_kf.account_delete),
    ("POST", "/cgi-bin/kf/account/update"): Route("wecom", _wecom_kf.account_update),
    ("POST", "/cgi-bin/kf/add_contact_way"): Route("wecom", _wecom_kf.contact_way),
    ("POST", "/cgi-bin/media/upload"): Route("wecom", _wecom_kf.media_upload),
    ("GET", "/cgi-bin/media/get"): Route("wecom", _wecom_kf.media_get),
    ("POST", "/cgi-bin/kf/service_state/get"): Route("wecom", _wecom_kf.state_get),
    ("POST", "/cgi-bin/kf/service_state/trans"): Route("wecom", _wecom_kf.state_trans),
    ("POST", "/cgi-bin/kf/customer/batchget"): Route("wecom", _wecom_kf.customer_batchget),
    ("POST", "/cgi-bin/kf/sync_msg"): Route("wecom", _wecom_messages.sync_msg),
    ("POST", "/cgi-bin/kf/send_msg"): Route("wecom", _wecom_messages.send_msg),
    ("POST", "/cgi-bin/kf/send_msg_on_event"): Route("wecom", _wecom_messages.send_msg_on_event),
    ("POST", "/customservice/kfsession/create"): Route("oa", _official_sessions.session_create),
    ("POST", "/customservice/kfsession/close"): Route("oa", _official_sessions.session_close),
    ("GET", "/customservice/kfsession/getsession"): Route("oa", _official_sessions.session_get),
    ("GET", "/customservice/kfsession/getsessionlist"): Route(
        "oa", _official_sessions.session_list
    ),
    ("GET", "/customservice/kfsession/getwaitcase"): Route("oa", _official_sessions.wait_case),
    ("POST", "/customservice/msgrecord/getmsglist"): Route("oa", _official_sessions.records),
    ("POST", "/cgi-bin/message/custom/send"): Route("oa", _official_sessions.custom_send),
    ("POST", "/cgi-bin/message/custom/typing"): Route("oa", _official_sessions.typing),
}
