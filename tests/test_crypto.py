"""WeChat's official crypto vectors, and round trips of random text."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from bot.wechat.crypto import DecryptError, MessageCrypto, check_url_signature, sha1_signature

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

VECTOR_A_XML = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]>"
    "</FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA["
    "eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]>"
    "</Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
VECTOR_A_XML_ENCRYPTED = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+"
    "IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/"
    "77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+"
    "oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv"
    "8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
)
VECTOR_C_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuP"
    "E328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZ"
    "bGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9"
    "GhglF2PE="
)
VECTOR_C_PLAIN = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[abcdteT]]></Content>\n"
    "<MsgId>6054768590064713728</MsgId>\n</xml>"
)


def test_vector_a_chinese_text_with_fixed_random_prefix() -> None:
    crypto = MessageCrypto("pamtest", AES_KEY, "wxb11529c136998cb6")
    assert crypto.encrypt("我是中文abcd123", random_prefix="aaaabbbbccccdddd") == (
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    )


def test_vector_a_xml_with_fixed_random_prefix() -> None:
    crypto = MessageCrypto("pamtest", AES_KEY, "wxb11529c136998cb6")
    assert crypto.encrypt(VECTOR_A_XML, random_prefix="aaaabbbbccccdddd") == VECTOR_A_XML_ENCRYPTED
    assert crypto.decrypt(VECTOR_A_XML_ENCRYPTED) == VECTOR_A_XML


def test_vector_c_official_account_push() -> None:
    crypto = MessageCrypto("spamtest", AES_KEY, "wx2c2769f8efd9abc2")
    assert crypto.verify("5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132", VECTOR_C_ENCRYPT)
    assert not crypto.verify("5d197aaffba7e9b25a30732f161a50dee96bd5fb", "1409735669", "1320562132", VECTOR_C_ENCRYPT)
    assert crypto.decrypt(VECTOR_C_ENCRYPT) == VECTOR_C_PLAIN


def test_vector_c_for_another_appid_is_refused() -> None:
    crypto = MessageCrypto("spamtest", AES_KEY, "wx_someone_else")
    with pytest.raises(DecryptError):
        crypto.decrypt(VECTOR_C_ENCRYPT)


def test_url_signature_sanity_check() -> None:
    assert sha1_signature("789", "456", "123") == "f7c3bc1d808e04732adf679965ccc34ca7ae3441"
    assert check_url_signature("123", "f7c3bc1d808e04732adf679965ccc34ca7ae3441", "456", "789")
    assert not check_url_signature("123", "f7c3bc1d808e04732adf679965ccc34ca7ae3442", "456", "789")
    assert not check_url_signature("123", None, "456", "789")


@pytest.mark.parametrize("garbage", ["", "not base64!!", "AAAA", "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmk="])
def test_garbage_ciphertext_is_a_decrypt_error_not_a_crash(garbage: str) -> None:
    with pytest.raises(DecryptError):
        MessageCrypto("t", AES_KEY, "wxb11529c136998cb6").decrypt(garbage)


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=0, max_size=3000))
def test_encrypt_decrypt_round_trip_of_any_unicode(text: str) -> None:
    crypto = MessageCrypto("token", AES_KEY, "wx1234567890abcdef")
    encrypted = crypto.encrypt(text)
    assert crypto.decrypt(encrypted) == text


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=500))
def test_signed_reply_envelope_round_trip(text: str) -> None:
    from bot.wechat.xml import parse_xml

    crypto = MessageCrypto("token", AES_KEY, "wx1234567890abcdef")
    envelope = parse_xml(crypto.encrypt_reply(text, nonce="n1", timestamp="1700000000"))
    assert crypto.verify(envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"])
    assert crypto.decrypt(envelope["Encrypt"]) == text
