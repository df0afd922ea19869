"""``wechat-kf fake-server --members N --cap N --faults ... --seed N``: the spec it reads, the
usage errors it refuses (exit 2, before listening), and a served fake shaped by them."""

from __future__ import annotations

import collections
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import anyio
import pytest
from click.testing import CliRunner

from tests._servers import Running, free_port, listening
from wechat_kf import RateLimitError, WeComClient
from wechat_kf.cli import main
from wechat_kf.cli.fake_server import parse_faults
from wechat_kf.testing import Faults, sandbox

_BOX = sandbox()
CORPID, SECRET, OPEN_KFID = _BOX.corpid, _BOX.wecom_secret, _BOX.open_kfid


# -- the --faults spec -------------------------------------------------------------------------


def test_the_issues_spec_sets_the_fakes_rates() -> None:
    spec = parse_faults("busy=0.2,http5xx=0.05,drop=0.02")
    box = sandbox()
    spec.apply(box)
    assert box.fake.faults == Faults(busy_rate=0.2, http_error_rate=0.05, drop_rate=0.02)


def test_every_key_of_the_spec_reaches_the_fake() -> None:
    spec = parse_faults(
        "busy=0.1, http5xx=0.2, http5xx_after=0.3, drop=0.4, drop_after=0.5, stall=0.01,"
        "latency=0.01-0.02, revoke_every=50, http5xx_status=503,"
        "45033=0.1, 45009@/cgi-bin/kf/send_msg=1"
    )
    box = sandbox()
    spec.apply(box)
    faults = box.fake.faults
    assert (faults.busy_rate, faults.http_error_rate, faults.http_error_after_rate) == (
        0.1,
        0.2,
        0.3,
    )
    assert (faults.drop_rate, faults.drop_after_rate, faults.stall_rate) == (0.4, 0.5, 0.01)
    assert (faults.latency, faults.revoke_every, faults.http_error_status) == (
        (0.01, 0.02),
        50,
        503,
    )
    assert [(f.errcode, f.path, f.rate) for f in faults.errcodes] == [
        (45033, None, 0.1),
        (45009, "/cgi-bin/kf/send_msg", 1.0),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("busy=2", "busy=2: a rate is a number from 0 to 1"),
        ("busy=-0.1", "a rate is a number from 0 to 1"),
        ("busy=lots", "a rate is a number from 0 to 1"),
        ("busy", "'busy' is not KEY=VALUE"),
        ("busy=0.2,,drop=0.1", "'' is not KEY=VALUE"),
        ("busy=", "'busy=' is not KEY=VALUE"),
        ("bsy=0.2", "unknown fault 'bsy'"),
        ("busy=0.1,busy=0.2", "busy is given twice"),
        ("latency=-1", "latency=-1: seconds from 0 to 60"),
        ("latency=0.5-0.1", "seconds from 0 to 60, or LOW-HIGH"),
        ("revoke_every=0", "revoke_every=0: a whole number 1 or more"),
        ("revoke_every=2.5", "a whole number 1 or more"),
        ("http5xx_status=404", "http5xx_status=404: a whole number from 500 to 599"),
        ("0=0.5", "an errcode other than 0"),
        ("45033=0", "at a rate above 0"),
        ("45033=1.5", "a rate is a number from 0 to 1"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_faults(spec)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--faults", "busy=2"), "busy=2: a rate is a number from 0 to 1"),
        (("--faults", "bsy=0.2"), "unknown fault 'bsy'"),
        (("--faults", "45009@/cgi-bin/nowhere=0.5"), "the fake serves no path"),
        (("--members", "0"), "--members"),
        (("--members", "many"), "--members"),
        (("--cap", "-1"), "--cap"),
        (("--seed", "x"), "--seed"),
    ],
    ids=["rate", "key", "path", "members-0", "members-word", "cap", "seed"],
)
def test_bad_shaping_options_are_exit_2_before_listening(
    args: tuple[str, ...], message: str
) -> None:
    result = CliRunner().invoke(main, ["fake-server", "--port", "0", *args])
    assert result.exit_code == 2
    assert result.stdout == ""  # no banner: it never listened
    assert message in result.stderr
    assert "Traceback" not in result.output


# -- a served fake, shaped -----------------------------------------------------------------------


@pytest.fixture
def shaped_server(request: pytest.FixtureRequest) -> Iterator[Running]:
    port = free_port()
    command = [sys.executable, "-m", "wechat_kf", "fake-server", "--port", str(port)]
    with listening(
        [*command, *request.param],
        port,
        "fake-server",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as server:
        yield server


ISSUE_LINE = ["--members", "3000", "--cap", "2500", "--seed", "7",
              "--faults", "busy=0.2,http5xx=0.05,drop=0.02"]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("shaped_server", [ISSUE_LINE], indirect=True)
async def test_members_cap_and_faults_shape_the_served_fake(
    shaped_server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"user{i:04d}" for i in range(1, 3001)]
    caplog.set_level(logging.WARNING, logger="wechat_kf")
    with anyio.fail_after(60):
        async with WeComClient(
            CORPID, SECRET, base_url=shaped_server.url, max_retries=10
        ) as client:
            result = await client.servicers.add(OPEN_KFID, ids)
            for _ in range(50):
                await client.servicers.list(OPEN_KFID)
    # every one of the 3,000 members is processed; the cap of 2,500 turns the rest away
    assert collections.Counter(item.errcode for item in result.items) == {0: 2500, 95005: 500}
    # the faults were on: some attempts were answered busy, 502 or dropped, then retried
    assert any("retrying" in record.getMessage() for record in caplog.records)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "shaped_server", [["--faults", "45009@/cgi-bin/kf/servicer/list=1"]], indirect=True
)
async def test_an_errcode_on_a_path_is_answered_by_the_served_fake(shaped_server: Running) -> None:
    with anyio.fail_after(20):
        async with WeComClient(CORPID, SECRET, base_url=shaped_server.url) as client:
            assert (await client.servicers.add(OPEN_KFID, ["user0001"])).ok
            with pytest.raises(RateLimitError) as info:
                await client.servicers.list(OPEN_KFID)
    assert info.value.errcode == 45009
    assert info.value.errmsg.startswith("api freq out of limit")


def test_the_banner_shows_the_members_cap_and_faults() -> None:
    port = free_port()
    command = [sys.executable, "-m", "wechat_kf", "fake-server", "--port", str(port), *ISSUE_LINE]
    with listening(
        command, port, "fake-server", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as server:  # fmt: skip
        pass
    assert "members user0001..user3000" in server.output
    assert "servicer cap  2500" in server.output
    assert "busy=0.2,http5xx=0.05,drop=0.02    seed 7" in server.output
    assert "export WECHAT_KF_BASE_URL=" in server.output
