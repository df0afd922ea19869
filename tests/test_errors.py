"""The error tree and the errcode registry."""

from __future__ import annotations

import pytest

from wechat_kf import errors
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
