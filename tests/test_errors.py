"""The error tree and the errcode registry."""

from __future__ import annotations

import pickle

import anyio
import httpx
import pytest

from wechat_kf import OfficialAccountClient, StaticTokenProvider, WeComClient, errors
from wechat_kf.errors import (
    ERRCODES,
    AccessTokenError,
    APIError,
    CredentialError,
    CustomServiceNotEnabledError,
    InvalidKfAccountError,
    InvalidNicknameError,
    InviteError,
    KfAccountError,
    KfAccountExistsError,
    KfAccountLimitError,
    OpenKfidError,
    PermissionDeniedError,
    RateLimitError,
    WeChatError,
    api_error,
    parse_rid,
    token_endpoint_error,
)
from wechat_kf.testing import FakeWeChat

# Every errcode wechat-api.md names, with the class the design gives it.
DOCUMENTED: dict[int, type[APIError]] = {
    **dict.fromkeys([40001, 40014, 42001], AccessTokenError),
    **dict.fromkeys([45009, 45011, 45033], RateLimitError),
    **dict.fromkeys([48001, 60011, 95011, 95012, 95017], PermissionDeniedError),
    65400: CustomServiceNotEnabledError,
    65401: InvalidKfAccountError,
    65404: InvalidKfAccountError,
    65402: KfAccountError,
    65403: InvalidNicknameError,
    65405: KfAccountLimitError,
    65406: KfAccountExistsError,
    **dict.fromkeys(range(65407, 65413), InviteError),
    95000: OpenKfidError,
    95004: OpenKfidError,
    **dict.fromkeys(
        [
            40013,
            40125,
            40091,
            41002,
            41004,
            40164,
            61004,
            60020,
            40243,
            89501,
            89503,
            89506,
            89507,
            40002,
        ],
        CredentialError,
    ),
    **dict.fromkeys(
        [-1, 40003, 40005, 40009, 60003, 60111, 60123, 95005, 95006, 95014, 95019, 95027],
        APIError,
    ),
}


@pytest.mark.parametrize(("errcode", "cls"), sorted(DOCUMENTED.items()))
def test_every_documented_errcode_is_registered_with_its_class(
    errcode: int, cls: type[APIError]
) -> None:
    assert errcode in ERRCODES
    error = api_error(errcode, "msg", "/p")
    assert type(error) is cls
    assert error.description


def test_unknown_errcode_is_a_plain_api_error() -> None:
    error = api_error(99999, "who knows", "/p")
    assert type(error) is APIError
    assert error.description is None


def test_rid_is_parsed_from_errmsg() -> None:
    assert parse_rid("invalid credential rid: 6483a1b2-1c2d3e4f-5a6b7c8d") == (
        "6483a1b2-1c2d3e4f-5a6b7c8d"
    )
    assert parse_rid("ok") is None


def test_str_shows_errcode_errmsg_rid_and_path() -> None:
    error = api_error(65406, "kf account exists rid: abc-123", "/customservice/kfaccount/add")
    text = str(error)
    for part in ("65406", "kf account exists", "abc-123", "/customservice/kfaccount/add"):
        assert part in text


def test_token_endpoint_40001_is_a_credential_error() -> None:
    assert type(token_endpoint_error(40001, "invalid secret", "/cgi-bin/gettoken")) is (
        CredentialError
    )
    assert type(token_endpoint_error(45009, "quota", "/cgi-bin/token")) is RateLimitError


def test_tree_matches_the_design() -> None:
    for name in ("APIError", "TransportError", "InvalidResponseError", "BatchError"):
        assert issubclass(getattr(errors, name), WeChatError)
    for cls in (
        CredentialError,
        AccessTokenError,
        RateLimitError,
        PermissionDeniedError,
        KfAccountError,
        OpenKfidError,
    ):
        assert issubclass(cls, APIError)
    for cls in (
        KfAccountExistsError,
        KfAccountLimitError,
        InvalidNicknameError,
        InvalidKfAccountError,
        CustomServiceNotEnabledError,
        InviteError,
    ):
        assert issubclass(cls, KfAccountError)


def test_module_docstring_draws_the_tree() -> None:
    assert errors.__doc__ is not None
    for name in ("WeChatError", "APIError", "TransportError", "InvalidResponseError", "BatchError"):
        assert name in errors.__doc__


def test_wecom_hint_is_parsed_as_the_rid() -> None:
    errmsg = (
        "invalid credential, hint: [1559277777_1_abcdef], from ip: 1.2.3.4, "
        "more info at https://open.work.weixin.qq.com/devtool/query?e=40014"
    )
    assert parse_rid(errmsg) == "1559277777_1_abcdef"
    assert api_error(40014, errmsg, "/cgi-bin/kf/servicer/add").rid == "1559277777_1_abcdef"
    assert parse_rid("invalid appsecret rid: 6582f5c2-1a2b3c4d") == "6582f5c2-1a2b3c4d"
    assert parse_rid("no id here") is None


def test_rid_is_the_rid_value_when_errmsg_also_carries_a_hint() -> None:
    # A real Official Account answer: support asks for the rid; the hint stays available.
    errmsg = (
        "invalid custom service account hint: [4hEDR0I2e-OQxxgA] rid: 61123150-1bf2ec94-0441cc67"
    )
    error = api_error(65401, errmsg, "/customservice/kfaccount/update")
    assert parse_rid(errmsg) == "61123150-1bf2ec94-0441cc67"
    assert error.rid == "61123150-1bf2ec94-0441cc67"
    assert error.hint == "4hEDR0I2e-OQxxgA"
    assert "rid=61123150-1bf2ec94-0441cc67" in str(error)
    restored = pickle.loads(pickle.dumps(error))
    assert (restored.rid, restored.hint) == (error.rid, error.hint)


def test_hint_alone_is_both_rid_and_hint_and_a_rid_alone_has_no_hint() -> None:
    wecom = api_error(60111, "userid not found, hint: [1559277777_1_abc]", "/p")
    assert (wecom.rid, wecom.hint) == ("1559277777_1_abc", "1559277777_1_abc")
    oa = api_error(65406, "kf account exists rid: abc-123", "/p")
    assert (oa.rid, oa.hint) == ("abc-123", None)


def _every_kind_of_error() -> list[WeChatError]:
    from wechat_kf import BatchError, BatchResult, Customer, CustomerBatch, ServicerResult
    from wechat_kf.errors import (
        ClientClosedError,
        InvalidResponseError,
        TokenStoreError,
        TransportError,
    )

    api = [api_error(code, f"text {code} rid: r-{code}", "/p") for code in ERRCODES]
    transport = TransportError(
        "HTTP 504 on POST /x", path="/x", maybe_applied=True, status_code=504
    )
    result = BatchResult([ServicerResult("u1", None, 0, "success")])
    customers = CustomerBatch([Customer("wm1", nickname="张三")], ["wm2"])
    send = TransportError(
        "HTTP 502 on POST /cgi-bin/kf/send_msg", path="/p", maybe_applied=True, msgid="a1" * 16
    )
    return [
        *api,
        token_endpoint_error(40125, "invalid appsecret", "/cgi-bin/token"),
        transport,
        send,
        InvalidResponseError("body is not JSON", path="/y", status_code=200),
        BatchError(result, ["u2"], [3], [transport]),
        BatchError(customers, ["wm3"], [], [transport]),
        TokenStoreError("Redis unreachable"),
        ClientClosedError("the client is closed"),
    ]


def _attributes(error: BaseException) -> dict[str, object]:
    def plain(value: object) -> object:
        if isinstance(value, BaseException):
            return _attributes(value)
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    state = {name: plain(value) for name, value in vars(error).items()}
    return {"type": type(error), "args": error.args, "str": str(error), **state}


@pytest.mark.parametrize("error", _every_kind_of_error(), ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_all_its_attributes(error: WeChatError) -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(error))
    assert _attributes(copy) == _attributes(error)


def _raise_transport_error() -> None:
    from wechat_kf.errors import TransportError

    raise TransportError("HTTP 502 on GET /x", path="/x", maybe_applied=False, status_code=502)


def test_a_process_pool_worker_raising_a_transport_error_does_not_break_the_pool() -> None:
    from concurrent.futures import ProcessPoolExecutor

    from wechat_kf.errors import TransportError

    with ProcessPoolExecutor(max_workers=1) as pool:
        with pytest.raises(TransportError) as info:
            pool.submit(_raise_transport_error).result(timeout=60)
        assert pool.submit(int, "7").result(timeout=60) == 7  # the pool still works
    assert info.value.status_code == 502
    assert info.value.path == "/x"
    assert info.value.maybe_applied is False


def test_a_40001_from_a_token_endpoint_says_invalid_secret_not_the_access_token() -> None:
    for path in ("/cgi-bin/gettoken", "/cgi-bin/token", "/cgi-bin/stable_token"):
        error = token_endpoint_error(40001, "invalid credential, secret is invalid", path)
        assert isinstance(error, CredentialError)
        assert str(error).endswith("(invalid secret)")
        assert "latest" not in str(error)
    assert api_error(40125, "invalid appsecret", "/cgi-bin/token").description == (
        "invalid appsecret"
    )


@pytest.mark.parametrize(
    ("errcode", "name"),
    [
        (95018, "SessionStateError"),
        (95013, "SessionStateError"),
        (45015, "MessageWindowError"),
        (45047, "MessageWindowError"),
        *[(code, "KfSessionError") for code in range(65413, 65418)],
    ],
)
def test_the_customer_service_errcodes_raise_their_own_classes(errcode: int, name: str) -> None:
    import wechat_kf

    error = api_error(errcode, f"refused rid: r-{errcode}", "/p")
    assert type(error) is getattr(wechat_kf, name)
    assert isinstance(error, wechat_kf.APIError)
    assert error.description


@pytest.mark.parametrize("errcode", [40004, 40006, 40007, 40011, 40058, 40096, 95007, 95016, 45080])
def test_every_new_errcode_of_the_customer_service_calls_is_described(errcode: int) -> None:
    assert ERRCODES[errcode].description
    assert str(errcode) not in ERRCODES[errcode].description


def test_a_customer_batch_error_counts_customers_and_invalid_ids_as_processed() -> None:
    from wechat_kf import BatchError, Customer, CustomerBatch

    partial = CustomerBatch([Customer("wm1")], ["wm2"])
    error = BatchError(partial, ["wm3", "wm4"], [], [RuntimeError("x")])
    assert str(error).startswith("2 of 4 ids unprocessed after 1 failed request(s)")
    assert error.result.customers[0].external_userid == "wm1"


def test_a_send_s_transport_error_names_its_msgid() -> None:
    from wechat_kf.errors import TransportError

    error = TransportError("HTTP 502 on POST /p", path="/p", maybe_applied=True, msgid="m" * 32)
    assert error.msgid == "m" * 32
    assert f"msgid={'m' * 32}" in str(error)
    assert TransportError("x", maybe_applied=False).msgid is None


# Every path of the SDK's token endpoints, with the platform it belongs to.
TOKEN_PATHS = {
    "/cgi-bin/token": "official_account",
    "/cgi-bin/stable_token": "official_account",
    "/cgi-bin/component/api_component_token": "official_account",
    "/cgi-bin/component/api_authorizer_token": "official_account",
    "/cgi-bin/gettoken": "wecom",
    "/cgi-bin/service/get_suite_token": "wecom",
    "/cgi-bin/service/get_corp_token": "wecom",
}


def _every_path_the_sdk_calls() -> dict[str, str]:
    """The paths FakeWeChat serves (every endpoint the SDK calls), with their platform."""
    from wechat_kf.testing._routes import ROUTES

    names = {"oa": "official_account", "wecom": "wecom"}
    paths = {
        path: names[route.platform]
        for (_, path), route in ROUTES.items()
        if route.platform in names
    }
    token_routes = {path for (_, path), route in ROUTES.items() if route.platform == "token"}
    assert token_routes == set(TOKEN_PATHS)  # a new token endpoint is classified above
    return {**paths, **TOKEN_PATHS}


@pytest.mark.parametrize(("path", "platform"), sorted(_every_path_the_sdk_calls().items()))
def test_every_path_the_sdk_calls_belongs_to_its_platform(path: str, platform: str) -> None:
    assert errors.platform_of(path) == platform
    assert api_error(40001, "x", path).platform == platform


def test_a_path_the_sdk_does_not_call_belongs_to_no_platform() -> None:
    for path in (None, "", "/p", "/cgi-bin/tokens", "/cgi-bin/gettoken2", "/cgi-bin/menu/get"):
        assert errors.platform_of(path) is None


@pytest.mark.parametrize(("path", "platform"), sorted(_every_path_the_sdk_calls().items()))
def test_not_the_latest_token_is_said_of_a_40001_on_official_account_paths_only(
    path: str, platform: str
) -> None:
    rejected = AccessTokenError(40001, "invalid credential", path=path)
    if platform == "official_account":
        assert "not the latest" in str(rejected)
    else:
        assert "latest" not in str(rejected)
        assert "invalid credential" in (rejected.description or "")


def test_a_40001_of_unknown_origin_says_neither_platforms_meaning() -> None:
    error = AccessTokenError(40001, "invalid credential")
    assert error.description == "invalid credential: the access_token was rejected"
    assert ERRCODES[40001].description == error.description
    assert "latest" not in str(error)


def test_a_40001_from_an_endpoint_taking_a_platform_token_is_that_token_not_a_secret() -> None:
    authorizer = token_endpoint_error(40001, "x", "/cgi-bin/component/api_authorizer_token")
    corp = token_endpoint_error(40001, "x", "/cgi-bin/service/get_corp_token")
    assert "secret" not in (authorizer.description or "")
    assert "not the latest" in (authorizer.description or "")  # the component token's meaning
    assert "latest" not in str(corp)
    assert "invalid secret" not in str(corp)


def test_40003_names_an_openid_on_official_accounts_and_a_userid_on_wecom() -> None:
    assert api_error(40003, "x", "/customservice/kfsession/create").description == (
        "invalid openid"
    )
    assert api_error(40003, "x", "/cgi-bin/kf/servicer/add").description == "invalid userid"
    assert api_error(40003, "x", None).description == "invalid openid or userid"


@pytest.mark.anyio
async def test_a_wrong_wecom_secret_raises_a_credential_error_saying_invalid_secret(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    app = fake.register_wecom_app()
    open_kfid = fake.create_kf_account(app.corpid)
    with anyio.fail_after(10):
        async with WeComClient(app.corpid, "not-the-secret", http_client=http) as wc:
            with pytest.raises(CredentialError) as info:
                await wc.servicers.list(open_kfid)
    assert info.value.errcode == 40001
    assert info.value.platform == "wecom"
    assert str(info.value).endswith("(invalid secret)")
    assert "latest" not in str(info.value)


@pytest.mark.anyio
async def test_a_rejected_official_account_token_says_it_may_not_be_the_latest(
    fake: FakeWeChat, http: httpx.AsyncClient
) -> None:
    fake.register_official_account()
    provider = StaticTokenProvider("a-token-the-fake-never-issued")
    with anyio.fail_after(10):
        async with OfficialAccountClient(token_provider=provider, http_client=http) as oa:
            with pytest.raises(AccessTokenError) as info:
                await oa.kf_accounts.list()
    assert info.value.errcode == 40001
    assert info.value.platform == "official_account"
    assert "not the latest" in str(info.value)


@pytest.mark.anyio
async def test_a_40001_on_a_wecom_business_call_never_says_not_the_latest() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errcode": 40001, "errmsg": "invalid credential"})

    transport = httpx.MockTransport(answer)
    provider = StaticTokenProvider("some-token")
    with anyio.fail_after(10):
        async with (
            httpx.AsyncClient(transport=transport) as http,
            WeComClient(token_provider=provider, http_client=http) as wc,
        ):
            with pytest.raises(AccessTokenError) as info:
                await wc.servicers.list("wkAJ2GCAAA")
    assert info.value.platform == "wecom"
    assert "latest" not in str(info.value)
    assert "invalid credential" in str(info.value)
