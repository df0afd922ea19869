"""FakeWeChat's chosen errcodes: ``inject_errcode`` (a whole call on a path, for a number of
calls, after some, or at a seeded rate) and ``fail_servicer_ids`` (chosen ids of a servicer
batch), answered with WeChat's errmsg, seen through plain HTTP and through the SDK."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from wechat_kf import (
    OfficialAccountClient,
    RateLimitError,
    SessionStateError,
    Text,
    WeComClient,
)
from wechat_kf.errors import ERRCODES
from wechat_kf.testing import ErrcodeFault, FakeWeChat, Faults, ServicerIdFault

pytestmark = pytest.mark.anyio

OA = "https://api.weixin.qq.com"
WECOM = "https://qyapi.weixin.qq.com"
KF_LIST = "/cgi-bin/customservice/getkflist"
SEND = "/cgi-bin/kf/send_msg"
ADD = "/cgi-bin/kf/servicer/add"


async def oa_token(http: httpx.AsyncClient, fake: FakeWeChat) -> str:
    app = next(iter(fake.official_accounts.values()))
    body = {"grant_type": "client_credential", "appid": app.appid, "secret": app.secret}
    return str((await http.post(f"{OA}/cgi-bin/stable_token", json=body)).json()["access_token"])


async def kf_list(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """The kf account list's answer, its errcode 0 when it carries none (a success)."""
    answer = dict((await http.get(f"{OA}{KF_LIST}", params={"access_token": token})).json())
    answer.setdefault("errcode", 0)
    return answer


# -- a whole call ----------------------------------------------------------------------------


async def test_an_injected_errcode_answers_its_path_for_the_chosen_number_of_calls(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    token = await oa_token(http, fake)
    fault = fake.inject_errcode(45009, path=KF_LIST, times=2)
    answers = [await kf_list(http, token) for _ in range(3)]
    assert [a.get("errcode") for a in answers] == [45009, 45009, 0]
    assert fault.hits == 2
    assert fault.spent
    # the Official Account's own words, then a rid as WeChat writes it
    assert answers[0]["errmsg"].startswith("reach max api daily quota limit rid: ")
    assert [c.errcode for c in fake.calls_to(KF_LIST)] == [45009, 45009, None]


async def test_an_injected_errcode_refuses_the_call_without_applying_it(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_official_account()
    token = await oa_token(http, fake)
    fake.inject_errcode(48001, path="/customservice/kfaccount/add", times=1)
    body = {"kf_account": "a@gh_fake", "nickname": "n"}
    url = f"{OA}/customservice/kfaccount/add"
    first = (await http.post(url, json=body, params={"access_token": token})).json()
    assert (first["errcode"], first["errmsg"].split(" rid: ")[0]) == (48001, "api unauthorized")
    assert fake.kf_accounts(app.appid) == {}
    second = (await http.post(url, json=body, params={"access_token": token})).json()
    assert second["errcode"] == 0
    assert list(fake.kf_accounts(app.appid)) == ["a@gh_fake"]


async def test_other_paths_are_untouched_by_an_injected_errcode(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    token = await oa_token(http, fake)
    fake.inject_errcode(45009, path="/cgi-bin/customservice/getonlinekflist")
    assert (await kf_list(http, token))["errcode"] == 0


async def test_without_a_path_every_business_call_is_answered_but_tokens_are_still_issued(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    fake.inject_errcode(-1)
    token = await oa_token(http, fake)
    assert token
    answer = await kf_list(http, token)
    assert (answer["errcode"], answer["errmsg"].split(" rid: ")[0]) == (-1, "system error")


async def test_a_token_endpoint_takes_an_errcode_when_named(
    fake: FakeWeChat, corp: tuple[str, str, str], http: httpx.AsyncClient
) -> None:
    fake.inject_errcode(45009, path="/cgi-bin/gettoken", times=1)
    params = {"corpid": corp[0], "corpsecret": corp[1]}
    first = (await http.get(f"{WECOM}/cgi-bin/gettoken", params=params)).json()
    assert first["errcode"] == 45009
    assert first["errmsg"].startswith("api freq out of limit rid: ")  # WeCom's words
    second = (await http.get(f"{WECOM}/cgi-bin/gettoken", params=params)).json()
    assert "access_token" in second
    assert fake.token_fetches == 2


async def test_a_call_with_a_bad_token_is_refused_for_its_token_before_an_injected_errcode(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    fault = fake.inject_errcode(45009, path=KF_LIST, times=1)
    assert (await kf_list(http, "not-a-token"))["errcode"] == 40001
    assert fault.hits == 0
    assert (await kf_list(http, await oa_token(http, fake)))["errcode"] == 45009


async def test_after_lets_the_first_calls_through(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    token = await oa_token(http, fake)
    fake.inject_errcode(45009, path=KF_LIST, after=2, times=1)
    answers = [(await kf_list(http, token))["errcode"] for _ in range(4)]
    assert answers == [0, 0, 45009, 0]


async def test_a_chosen_errmsg_replaces_wechats(fake: FakeWeChat, http: httpx.AsyncClient) -> None:
    fake.register_official_account()
    token = await oa_token(http, fake)
    fake.inject_errcode(45009, path=KF_LIST, errmsg="quota gone for today")
    assert (await kf_list(http, token))["errmsg"].startswith("quota gone for today rid: ")


async def test_an_errcode_wechat_words_nowhere_here_takes_the_sdks_meaning_of_it(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    token = await oa_token(http, fake)
    fake.inject_errcode(95011, path=KF_LIST, times=1)
    fake.inject_errcode(99999, path=KF_LIST, times=1)
    first, second = [(await kf_list(http, token))["errmsg"] for _ in range(2)]
    assert first.split(" rid: ")[0] == ERRCODES[95011].description
    assert second.split(" rid: ")[0] == "unknown error"


async def test_the_first_fault_that_answers_a_call_wins(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    token = await oa_token(http, fake)
    first = fake.inject_errcode(45011, path=KF_LIST, times=1)
    second = fake.inject_errcode(48001, path=KF_LIST, times=1)
    answers = [(await kf_list(http, token))["errcode"] for _ in range(3)]
    assert answers == [45011, 48001, 0]
    assert (first.hits, second.hits) == (1, 1)


async def test_an_errcode_at_a_rate_is_the_same_for_a_seed_and_differs_between_seeds() -> None:
    async def answers(seed: int) -> list[int]:
        fake = FakeWeChat(seed=seed)
        fake.register_official_account()
        async with httpx.AsyncClient(transport=fake.transport) as http:
            token = await oa_token(http, fake)
            fake.inject_errcode(45033, path=KF_LIST, rate=0.5)
            return [(await kf_list(http, token))["errcode"] for _ in range(40)]

    five = await answers(5)
    assert five == await answers(5)
    assert five != await answers(6)
    assert 0 < five.count(45033) < 40
    assert set(five) == {0, 45033}


async def test_resetting_the_faults_switches_injected_errcodes_off(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    token = await oa_token(http, fake)
    fake.inject_errcode(45009, path=KF_LIST)
    assert (await kf_list(http, token))["errcode"] == 45009
    fake.faults = Faults()
    assert (await kf_list(http, token))["errcode"] == 0


# -- through the SDK ---------------------------------------------------------------------------


async def test_the_sdk_retries_an_injected_45033_and_succeeds(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.inject_errcode(45033, path=ADD, times=2)
    result = await wc.servicers.add(corp[2], ["u1"])
    assert result.ok
    assert [c.errcode for c in fake.calls_to(ADD)] == [45033, 45033, 0]


async def test_the_sdk_raises_an_injected_45009_at_once_and_nothing_is_sent(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.customer_says(corp[2], "wmCUSTOMER", "你好")
    fake.inject_errcode(45009, path=SEND)
    with anyio.fail_after(5), pytest.raises(RateLimitError) as info:
        await wc.messages.send(corp[2], "wmCUSTOMER", Text("您好"))
    assert info.value.errcode == 45009
    assert info.value.errmsg.startswith("api freq out of limit")
    assert len(fake.calls_to(SEND)) == 1
    assert fake.sent_messages(corp[2]) == []


async def test_an_injected_95018_is_the_sdks_session_state_error(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.customer_says(corp[2], "wmCUSTOMER", "你好")
    fake.inject_errcode(95018, path=SEND, times=1)
    with pytest.raises(SessionStateError) as info:
        await wc.messages.send(corp[2], "wmCUSTOMER", Text("您好"))
    assert info.value.errmsg.startswith("send msg session status invalid")
    sent = await wc.messages.send(corp[2], "wmCUSTOMER", Text("您好"))
    assert [m.msgid for m in fake.sent_messages(corp[2])] == [sent.msgid]


async def test_an_injected_errcode_reaches_an_official_account_client(
    fake: FakeWeChat, oa: OfficialAccountClient
) -> None:
    fake.inject_errcode(45009, path=KF_LIST)
    with pytest.raises(RateLimitError) as info:
        await oa.kf_accounts.list()
    assert info.value.errmsg.startswith("reach max api daily quota limit")


# -- chosen ids of a servicer batch ------------------------------------------------------------


async def test_chosen_userids_fail_with_their_item_errcode_and_the_rest_of_the_batch_succeeds(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fault = fake.fail_servicer_ids(["u2"], errcode=95019)
    result = await wc.servicers.add(corp[2], ["u1", "u2", "u3"])
    assert [(i.userid, i.errcode) for i in result.items] == [("u1", 0), ("u2", 95019), ("u3", 0)]
    assert result.failed[0].errmsg.startswith("servicer stopped or suspended")
    assert set(fake.servicers(corp[2])) == {"u1", "u3"}
    assert fault.hits == 1
    assert [c.errcode for c in fake.calls_to(ADD)] == [0]


async def test_a_chosen_id_fails_in_whichever_request_of_a_large_batch_carries_it(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    ids = [f"u{i}" for i in range(250)]
    chosen = {"u0", "u150", "u249"}
    fake.fail_servicer_ids(chosen, errcode=60011)
    result = await wc.servicers.add(corp[2], ids)
    assert len(fake.calls_to(ADD)) == 3
    assert {i.userid for i in result.failed} == chosen
    assert {i.errcode for i in result.failed} == {60011}
    assert set(fake.servicers(corp[2])) == set(ids) - chosen


async def test_times_fails_each_chosen_id_that_many_times_then_lets_it_through(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.fail_servicer_ids(["u1", "u2"], errcode=95019, times=1)
    first = await wc.servicers.add(corp[2], ["u1", "u2"])
    assert [i.errcode for i in first.items] == [95019, 95019]
    second = await wc.servicers.add(corp[2], ["u1", "u2"])
    assert second.ok
    assert set(fake.servicers(corp[2])) == {"u1", "u2"}


async def test_chosen_ids_fail_only_on_the_chosen_call(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.fail_servicer_ids(["u1"], department_ids=[2], errcode=95014, on="delete")
    added = await wc.servicers.add(corp[2], ["u1"], department_ids=[2])
    assert added.ok
    deleted = await wc.servicers.delete(corp[2], ["u1"], department_ids=[2])
    assert [(i.userid, i.department_id, i.errcode) for i in deleted.items] == [
        ("u1", None, 95014),
        (None, 2, 95014),
    ]
    # 95014 on delete is an ok outcome for the SDK ("already not a servicer"), kept as sent
    assert deleted.ok
    assert set(fake.servicers(corp[2])) == {"u1"}
    assert fake.servicer_departments(corp[2]) == [2]


async def test_a_chosen_department_fails_on_add(
    fake: FakeWeChat, wc: WeComClient, corp: tuple[str, str, str]
) -> None:
    fake.fail_servicer_ids(department_ids=[3], errcode=60011, on="add")
    result = await wc.servicers.add(corp[2], department_ids=[2, 3])
    assert [(i.department_id, i.errcode) for i in result.items] == [(2, 0), (3, 60011)]
    assert fake.servicer_departments(corp[2]) == [2]


# -- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"errcode": 0}, ValueError),
        ({"errcode": "45009"}, TypeError),
        ({"errcode": True}, TypeError),
        ({"errcode": 45009, "path": "/cgi-bin/nowhere"}, ValueError),
        ({"errcode": 45009, "path": "cgi-bin/kf/send_msg"}, ValueError),
        ({"errcode": 45009, "path": f"{WECOM}{SEND}"}, ValueError),
        ({"errcode": 45009, "times": 0}, ValueError),
        ({"errcode": 45009, "times": 1.5}, TypeError),
        ({"errcode": 45009, "rate": 0}, ValueError),
        ({"errcode": 45009, "rate": 1.5}, ValueError),
        ({"errcode": 45009, "rate": "0.5"}, TypeError),
        ({"errcode": 45009, "after": -1}, ValueError),
        ({"errcode": 45009, "errmsg": 1}, TypeError),
    ],
)
def test_inject_errcode_refuses_bad_arguments_and_keeps_nothing(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    fake = FakeWeChat()
    with pytest.raises(error):
        fake.inject_errcode(**kwargs)
    assert fake.faults.errcodes == []


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("u1",), {"errcode": 95019}, TypeError),
        ((), {"errcode": 95019}, ValueError),
        ((["u1"],), {"errcode": 0}, ValueError),
        ((["u1"],), {"errcode": 95019, "on": "remove"}, ValueError),
        (([""],), {"errcode": 95019}, ValueError),
        ((), {"errcode": 95019, "department_ids": [0]}, ValueError),
        ((), {"errcode": 95019, "department_ids": [True]}, ValueError),
        ((["u1"],), {"errcode": 95019, "times": 0}, ValueError),
    ],
)
def test_fail_servicer_ids_refuses_bad_arguments_and_keeps_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    fake = FakeWeChat()
    with pytest.raises(error):
        fake.fail_servicer_ids(*args, **kwargs)
    assert fake.faults.servicer_ids == []


def test_the_faults_returned_are_the_ones_kept() -> None:
    fake = FakeWeChat()
    errcode = fake.inject_errcode(45033, path=ADD)
    ids = fake.fail_servicer_ids(["u1"], errcode=95019)
    assert isinstance(errcode, ErrcodeFault)
    assert isinstance(ids, ServicerIdFault)
    assert fake.faults.errcodes == [errcode]
    assert fake.faults.servicer_ids == [ids]
