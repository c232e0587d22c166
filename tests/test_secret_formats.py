import base64

import pytest

from credd.errors import SecretFormatError
from credd.secret_formats import parse_access_key, parse_totp_seed
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED


def test_access_key_is_trimmed_and_wrapped():
    key = parse_access_key(f"  {TEST_KEY_ID}\r\n", f"{TEST_SECRET_KEY}\n")
    assert key.key_id == TEST_KEY_ID
    assert key.secret.reveal() == TEST_SECRET_KEY
    assert TEST_SECRET_KEY not in repr(key) and TEST_KEY_ID not in repr(key)


@pytest.mark.parametrize("key_id, secret, message", [
    ("ASIAIOSFODNN7EXAMPLE", TEST_SECRET_KEY, "temporary credentials"),
    ("akiaiosfodnn7example", TEST_SECRET_KEY, "not an access key id"),
    ("AKIA", TEST_SECRET_KEY, "got 4 characters"),
    ("AKIAIOSFODNN7EXAMPLE1", TEST_SECRET_KEY, "AKIA and 16 capital letters and digits, 20 in all"),
    ("ABIAIOSFODNN7EXAMPLE", TEST_SECRET_KEY, "not an access key id"),
    (TEST_KEY_ID, "short", "not a secret access key"),
    (TEST_KEY_ID, TEST_SECRET_KEY + " x", "not a secret access key"),
    (TEST_SECRET_KEY, TEST_KEY_ID, "not an access key id"),  # pasted the wrong way round
])
def test_bad_access_keys(key_id, secret, message):
    with pytest.raises(SecretFormatError, match=message) as caught:
        parse_access_key(key_id, secret)
    assert TEST_SECRET_KEY not in str(caught.value)


@pytest.mark.parametrize("text", [
    TEST_TOTP_SEED,
    TEST_TOTP_SEED.lower(),
    "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp",
    TEST_TOTP_SEED + "====",
    f"otpauth://totp/Amazon%20Web%20Services:alice@123?secret={TEST_TOTP_SEED}&issuer=Amazon%20Web%20Services",
    f"otpauth://totp/x?secret={TEST_TOTP_SEED.lower()}&algorithm=SHA1&digits=6&period=30",
])
def test_good_seeds_normalise(text):
    assert parse_totp_seed(text).reveal() == TEST_TOTP_SEED


def test_aws_sized_seed():
    seed = base64.b32encode(bytes(range(40))).decode().rstrip("=")  # 320 bits, like AWS's
    assert parse_totp_seed(seed).reveal() == seed


@pytest.mark.parametrize("text, message", [
    ("JBSWY3DPEHPK3PXP", "holds 80 bits; at least 128"),
    ("JBSWY3DPEHPK3PX1JBSWY3DPEHPK3PXP", "character 16 is not one of A-Z and 2-7"),
    ("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXPJ", "33 characters is not a valid length"),
    ("otpauth://hotp/x?secret=" + TEST_TOTP_SEED, "is not a TOTP seed"),
    ("otpauth://totp/x?secret=" + TEST_TOTP_SEED + "&digits=8", "digits=8; AWS MFA uses digits=6"),
    ("otpauth://totp/x?secret=" + TEST_TOTP_SEED + "&algorithm=SHA256", "algorithm=SHA256"),
    ("otpauth://totp/x?issuer=Amazon", "no secret= parameter"),
    ("", "holds 0 bits"),
])
def test_bad_seeds(text, message):
    with pytest.raises(SecretFormatError, match=message) as caught:
        parse_totp_seed(text)
    assert TEST_TOTP_SEED not in str(caught.value)
