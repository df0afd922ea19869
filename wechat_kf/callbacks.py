"""WeChat's pushes to a callback URL: verify the URL check, decrypt and check each push into a
typed model, and encrypt what WeChat would send (for the fake, tests and passive replies).

One scheme serves WeCom, the open platform, the WeCom service provider and an Official Account's
safe mode; only the receive id differs (corpid, component appid, suite id, appid, or ""). Needs
the ``callbacks`` extra: ``pip install 'wechat-kf[callbacks]'`` (cryptography and defusedxml).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import time

import attrs

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError as _missing:  # pragma: no cover - only without the extra
    raise ImportError(
        "wechat_kf.callbacks needs the 'callbacks' extra: pip install 'wechat-kf[callbacks]'"
    ) from _missing

from ._callback_xml import (
    MAX_BODY_BYTES,
    AuthChange,
    Callback,
    ComponentVerifyTicket,
    KfMsgOrEvent,
    OfficialAccountMessage,
    Refusal,
    SuiteTicket,
    UnknownCallback,
    envelope,
    fields_of,
    model_of,
)
from ._secrets import Secret
from .errors import CallbackError

__all__ = [
    "MAX_BODY_BYTES",
    "AuthChange",
    "Callback",
    "CallbackCrypto",
    "ComponentVerifyTicket",
    "KfMsgOrEvent",
    "OfficialAccountMessage",
    "SealedCallback",
    "SuiteTicket",
    "UnknownCallback",
]

#: WeChat pads to 32 bytes, twice AES's block.
_BLOCK = 32
_KEY_CHARS = re.compile(r"[A-Za-z0-9+/]{43}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A timestamp of more digits than this is no time WeChat could send (and int() of a long
#: digit string costs quadratic time).
_MAX_TIMESTAMP_DIGITS = 12


@attrs.frozen
class SealedCallback:
    """What :meth:`CallbackCrypto.seal` produced: ``body`` (the XML WeChat would POST) and the
    query parameters it goes with, so ``crypto.decrypt(s.body, msg_signature=s.msg_signature,
    timestamp=s.timestamp, nonce=s.nonce)`` reads it back."""

    body: str
    msg_signature: str
    timestamp: str
    nonce: str


class CallbackCrypto:
    """Verifies, decrypts and encrypts the pushes of one callback URL, configured with its
    ``token`` (3..32 characters), ``encoding_aes_key`` (43 base64 characters) and ``receive_id``
    (the corpid, suite id, component appid or appid the pushes are sealed for; "" for a WeCom
    third-party app of a personal subject). ``max_age`` is how many seconds a push's timestamp
    may be from now, either way (None: not checked). Neither the token nor the key is ever shown;
    the cipher is built once, so a decrypt costs microseconds."""

    __slots__ = ("_cipher", "_receive_id", "_token", "max_age", "receive_id")

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        *,
        max_age: float | None = 300,
    ) -> None:
        if not isinstance(token, str) or not isinstance(encoding_aes_key, str):
            token = encoding_aes_key = ""  # not shown in the frame a tracker records either
            raise TypeError("token and encoding_aes_key must be str")
        # Error trackers record this frame's locals with a refused argument: show them redacted.
        token, encoding_aes_key = Secret(token), Secret(encoding_aes_key)
        if not isinstance(receive_id, str):
            raise TypeError(f"receive_id must be a str, not {type(receive_id).__name__}")
        if not 3 <= len(token) <= 32 or token.strip() != token:
            raise ValueError("token must be 3 to 32 characters, without surrounding spaces")
        if not _KEY_CHARS.fullmatch(encoding_aes_key):
            raise ValueError("encoding_aes_key must be 43 characters of base64")
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or not max_age >= 0
        ):
            raise ValueError("max_age must be a number of seconds >= 0, or None")
        key = base64.b64decode(encoding_aes_key + "=")
        self._token = token
        self.receive_id: str = receive_id
        self._receive_id = receive_id.encode("utf-8", "surrogatepass")
        self.max_age: float | None = max_age
        # Built once: only the per-message context is made for each push.
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def __repr__(self) -> str:
        # getattr: an error tracker may show an instance whose __init__ refused its arguments.
        receive_id = getattr(self, "receive_id", None)
        return (
            f"CallbackCrypto(receive_id={receive_id!r}, max_age={getattr(self, 'max_age', None)!r})"
        )

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """WeCom's URL check (``GET ?msg_signature=&timestamp=&nonce=&echostr=``): checks the
        signature over ``echostr`` and its timestamp, decrypts it and returns the plaintext,
        which is the body to answer with. Raises :class:`CallbackError` on any failure."""
        if not isinstance(echostr, str):
            # Checked here: _check signs without an encrypt part when given None (the OA scheme).
            raise CallbackError("signature", "echostr is missing or not a str")
        refusal = self._check(msg_signature, timestamp, nonce, echostr)
        if refusal is None:
            opened = self._open(echostr)
            if isinstance(opened, str):
                return opened
            refusal = opened
        raise CallbackError(*refusal)

    def verify_official_account_url(
        self, signature: str, timestamp: str, nonce: str, echostr: str
    ) -> str:
        """An Official Account's URL check (``GET ?signature=&timestamp=&nonce=&echostr=``), in
        any mode: checks the signature over token, timestamp and nonce, and the timestamp, and
        returns ``echostr`` unchanged (the body to answer with). Raises :class:`CallbackError`."""
        if not isinstance(echostr, str):
            raise CallbackError("signature", "echostr is missing or not a str")
        refusal = self._check(signature, timestamp, nonce, None)
        if refusal is not None:
            raise CallbackError(*refusal)
        return echostr

    def decrypt(
        self, body: bytes | str, *, msg_signature: str, timestamp: str, nonce: str
    ) -> Callback:
        """A POSTed push (``<xml>...<Encrypt>...</Encrypt></xml>`` with ``msg_signature``,
        ``timestamp`` and ``nonce`` from the query) checked and decrypted into its model. The body
        is capped at :data:`MAX_BODY_BYTES`; both XML documents are parsed without DTDs or
        entities; the signature, timestamp, padding, length and receive id are checked. Any
        failure raises :class:`CallbackError` and returns nothing of the push."""
        result = self._unseal(body, msg_signature, timestamp, nonce)
        if isinstance(result, Refusal):
            raise CallbackError(*result)
        return result

    def seal(
        self, plaintext_xml: str, *, timestamp: str | None = None, nonce: str | None = None
    ) -> SealedCallback:
        """``plaintext_xml`` encrypted and signed the way WeChat does it, with the query
        parameters it would send: ``timestamp`` defaults to now, ``nonce`` to 16 random
        characters. A :class:`SealedCallback`; :meth:`encrypt` returns its body only."""
        if not isinstance(plaintext_xml, str):
            raise TypeError("plaintext_xml must be a str")
        timestamp, nonce = _stamp(timestamp, nonce)
        encrypt = self._encrypted(plaintext_xml)
        signature = self._sign(timestamp, nonce, encrypt)
        return SealedCallback(
            envelope(encrypt, signature, timestamp, nonce), signature, timestamp, nonce
        )

    def seal_url_check(
        self, echo: str, *, timestamp: str | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """The query of the URL check WeCom sends for ``echo`` (``msg_signature``, ``timestamp``,
        ``nonce``, ``echostr``: the echo encrypted): what a test GETs its callback route with;
        :meth:`verify_url` of those returns ``echo``."""
        if not isinstance(echo, str):
            raise TypeError("echo must be a str")
        timestamp, nonce = _stamp(timestamp, nonce)
        echostr = self._encrypted(echo)
        signature = self._sign(timestamp, nonce, echostr)
        return {
            "msg_signature": signature,
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }

    def encrypt(
        self, plaintext_xml: str, *, timestamp: str | None = None, nonce: str | None = None
    ) -> str:
        """The XML body WeChat would POST for ``plaintext_xml`` (``Encrypt``, ``MsgSignature``,
        ``TimeStamp``, ``Nonce``: also an Official Account's encrypted passive reply). The
        signature, timestamp and nonce are inside it; :meth:`seal` returns them separately."""
        return self.seal(plaintext_xml, timestamp=timestamp, nonce=nonce).body

    def _encrypted(self, plaintext: str) -> str:
        """``plaintext`` sealed for this receive id: random prefix, length, message, receive id,
        padded to 32 and AES-CBC encrypted, in base64."""
        message = plaintext.encode("utf-8")
        plain = os.urandom(16) + len(message).to_bytes(4, "big") + message + self._receive_id
        pad = _BLOCK - len(plain) % _BLOCK
        encryptor = self._cipher.encryptor()
        sealed = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(sealed).decode("ascii")

    def _sign(self, timestamp: str, nonce: str, encrypt: str | None) -> str:
        parts = (
            [self._token, timestamp, nonce]
            if encrypt is None
            else [self._token, timestamp, nonce, encrypt]
        )
        joined = "".join(sorted(parts)).encode("utf-8", "surrogatepass")
        return hashlib.sha1(joined).hexdigest()  # WeChat's scheme, not our choice

    def _check(
        self, signature: object, timestamp: object, nonce: object, encrypt: str | None
    ) -> Refusal | None:
        if not (isinstance(signature, str) and isinstance(timestamp, str)):
            return Refusal("signature", "the signature or timestamp is missing or not a str")
        if not isinstance(nonce, str):
            return Refusal("signature", "the nonce is missing or not a str")
        expected = self._sign(timestamp, nonce, encrypt).encode("ascii")
        # Constant time: how much of a forged signature matched must not show in the timing.
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass")):
            return Refusal("signature", "the signature does not match")
        if self.max_age is None:
            return None
        if not (
            timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS
        ):
            return Refusal("timestamp", "the timestamp is not a number of seconds")
        if abs(time.time() - int(timestamp)) > self.max_age:
            return Refusal("timestamp", f"the timestamp is more than {self.max_age} s from now")
        return None

    def _unseal(
        self, body: object, signature: object, timestamp: object, nonce: object
    ) -> Callback | Refusal:
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if not isinstance(body, (bytes, str)):
            raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
        outer = fields_of(body)
        if isinstance(outer, Refusal):
            return outer
        encrypt = outer.get("Encrypt")
        if not encrypt:
            return Refusal("xml", "the body has no Encrypt element")
        refusal = self._check(signature, timestamp, nonce, encrypt)
        if refusal is not None:
            return refusal
        message = self._open(encrypt)
        if isinstance(message, Refusal):
            return message
        inner = fields_of(message)
        if isinstance(inner, Refusal):
            return Refusal(inner.reason, f"decrypted message: {inner.message}")
        return model_of(inner)

    def _open(self, encrypt: str) -> str | Refusal:
        """The message sealed in ``encrypt``, once its padding, length and receive id check."""
        if len(encrypt) > MAX_BODY_BYTES * 4 // 3 + 4:
            return Refusal("decrypt", "the encrypted message is too large")
        try:
            sealed = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            return Refusal("decrypt", "the encrypted message is not base64")
        if not sealed or len(sealed) % _BLOCK:
            return Refusal("decrypt", f"the encrypted message is not a multiple of {_BLOCK} bytes")
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(sealed) + decryptor.finalize()
        # The signature was checked first, so a stranger cannot probe the padding for an oracle.
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            return Refusal("decrypt", "the padding is not 1 to 32 equal bytes")
        content = plain[16:-pad]
        if len(content) < 4:
            return Refusal("decrypt", "the message is shorter than its length field")
        end = 4 + int.from_bytes(content[:4], "big")
        if end > len(content):
            return Refusal("decrypt", "the declared length runs past the end")
        if content[end:] != self._receive_id:
            return Refusal("receive_id", "the message is sealed for another receive id")
        try:
            return content[4:end].decode("utf-8")
        except UnicodeDecodeError:
            return Refusal("decrypt", "the message is not UTF-8")


# The models live with the XML that builds them; they are public here.
for _model in (
    AuthChange,
    ComponentVerifyTicket,
    KfMsgOrEvent,
    OfficialAccountMessage,
    SuiteTicket,
    UnknownCallback,
):
    _model.__module__ = __name__
del _model


def _stamp(timestamp: str | None, nonce: str | None) -> tuple[str, str]:
    """The timestamp (default: now) and nonce (default: 16 random characters) of a sealing,
    checked to be what WeChat sends."""
    if timestamp is None:
        timestamp = str(int(time.time()))
    if nonce is None:
        nonce = secrets.token_hex(8)
    if not (isinstance(timestamp, str) and timestamp.isascii() and timestamp.isdigit()):
        raise ValueError("timestamp must be a str of digits")
    if not (isinstance(nonce, str) and _NONCE.fullmatch(nonce)):
        raise ValueError("nonce must be 1 to 64 characters of [A-Za-z0-9_-]")
    return timestamp, nonce
