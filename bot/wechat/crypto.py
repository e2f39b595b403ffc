"""Signatures and message encryption (WeChat's "safe mode").

The AES part is wechatpy's ``PrpCrypto``; signatures are computed here and compared in
constant time (wechatpy compares them with ``!=``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException


class SignatureError(Exception):
    """A signature did not match."""


class DecryptError(Exception):
    """An Encrypt payload could not be decrypted, or was meant for another appid."""


def sha1_signature(*parts: str) -> str:
    """WeChat's signature: sha1 of the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's protocol


def signature_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.lower().encode())


def check_url_signature(token: str, signature: str | None, timestamp: str, nonce: str) -> bool:
    return signature_matches(sha1_signature(token, timestamp, nonce), signature)


class _FixedRandomPrp(PrpCrypto):  # type: ignore[misc]
    def __init__(self, key: bytes, prefix: str) -> None:
        super().__init__(key)
        self._prefix = prefix

    def get_random_string(self) -> str:
        return self._prefix


class MessageCrypto:
    """Encrypts replies and decrypts pushes for one account."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        self.token = token
        self.appid = appid
        self.key = base64.b64decode(encoding_aes_key + "=")

    def encrypt(self, plaintext: str, *, random_prefix: str | None = None) -> str:
        prp = PrpCrypto(self.key) if random_prefix is None else _FixedRandomPrp(self.key, random_prefix)
        encrypted: bytes | str = prp.encrypt(plaintext, self.appid)
        return encrypted.decode() if isinstance(encrypted, bytes) else encrypted

    def decrypt(self, encrypted: str) -> str:
        try:
            plain: bytes | str = PrpCrypto(self.key).decrypt(encrypted, self.appid)
        except InvalidAppIdException as exc:
            raise DecryptError("the message is for another appid") from exc
        except Exception as exc:  # bad base64, padding or length: all mean "not for us"
            raise DecryptError(f"cannot decrypt: {exc.__class__.__name__}") from exc
        return plain.decode("utf-8") if isinstance(plain, bytes) else plain

    def msg_signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return sha1_signature(self.token, timestamp, nonce, encrypted)

    def verify(self, msg_signature: str | None, timestamp: str, nonce: str, encrypted: str) -> bool:
        return signature_matches(self.msg_signature(timestamp, nonce, encrypted), msg_signature)

    def encrypt_reply(self, reply_xml: str, *, nonce: str | None = None, timestamp: str | None = None) -> str:
        """The encrypted, signed envelope WeChat expects as a passive reply in safe mode."""
        nonce = nonce or secrets.token_hex(8)
        timestamp = timestamp or str(int(time.time()))
        encrypted = self.encrypt(reply_xml)
        signature = self.msg_signature(timestamp, nonce, encrypted)
        return (
            "<xml>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce><![CDATA[{nonce}]]></Nonce>"
            "</xml>"
        )
