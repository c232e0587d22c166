"""Check the secrets users type or paste: access keys and TOTP seeds.

Pure functions. Error messages describe the shape of what was wrong (its
length, a bad character's position), never the value itself.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qs, unquote, urlsplit

from credd.errors import SecretFormatError
from credd.model import AccessKey, Secret

# An IAM user's long-term access key id: AKIA and 16 more (ASIA marks temporary credentials).
KEY_ID = re.compile(r"AKIA[A-Z0-9]{16}")
SECRET_KEY = re.compile(r"[A-Za-z0-9/+=]{16,128}")
MIN_SEED_BYTES = 16  # 128 bits, the least RFC 4226 allows (it recommends 160)


def parse_access_key(key_id: str, secret: str) -> AccessKey:
    """A long-term key as typed: surrounding white space is dropped, the rest must fit AWS's forms."""
    return AccessKey(parse_key_id(key_id), parse_secret_key(secret))


def parse_key_id(key_id: str) -> str:
    """An access key id as typed, checked on its own, so a prompt can ask again before the secret."""
    key_id = key_id.strip()
    if key_id.startswith("ASIA"):
        raise SecretFormatError(
            "that access key id starts with ASIA, which marks temporary credentials; "
            "credd needs the IAM user's long-term key (it starts with AKIA)"
        )
    if not KEY_ID.fullmatch(key_id):
        raise SecretFormatError(
            f"that is not an access key id: expected AKIA and 16 capital letters and digits, 20 in all "
            f"(like AKIAIOSFODNN7EXAMPLE), got {len(key_id)} characters"
        )
    return key_id


def parse_secret_key(secret: str) -> Secret:
    """A secret access key as typed; the error gives its length, never a character of it."""
    secret = secret.strip()
    if not SECRET_KEY.fullmatch(secret):
        raise SecretFormatError(
            f"that is not a secret access key: expected 16 to 128 characters of A-Z a-z 0-9 / + = "
            f"(usually 40), got {len(secret)} characters"
        )
    return Secret(secret)


def parse_mfa_code(text: str) -> str:
    """A 6-digit MFA code as typed (ASCII digits only: `\\d` would also take `١٢٣٤٥٦`)."""
    code = text.strip()
    if not re.fullmatch(r"[0-9]{6}", code):
        raise SecretFormatError(f"that is not an MFA code: expected 6 digits, got {len(code)} characters")
    return code


def parse_totp_seed(text: str) -> Secret:
    """A TOTP seed from base32 text or an `otpauth://totp/...` URI, normalised to unpadded base32.

    AWS virtual MFA devices use SHA-1, 6 digits and 30-second steps; a URI that
    says otherwise belongs to some other service and is refused.
    """
    text = text.strip()
    if text.lower().startswith("otpauth://"):
        text = _seed_from_uri(text)
    seed = re.sub(r"[\s-]", "", text).upper().rstrip("=")
    bad = re.search(r"[^A-Z2-7]", seed)
    if bad:
        raise SecretFormatError(
            f"that is not a base32 TOTP seed: character {bad.start() + 1} is not one of A-Z and 2-7; "
            "paste the secret key shown when you set up the MFA device, or its otpauth:// URI"
        )
    try:
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    except (binascii.Error, ValueError):
        raise SecretFormatError(f"that is not a base32 TOTP seed: {len(seed)} characters is not a valid "
                                "length") from None
    if len(raw) < MIN_SEED_BYTES:
        raise SecretFormatError(
            f"that TOTP seed holds {len(raw) * 8} bits; at least {MIN_SEED_BYTES * 8} are needed "
            "(AWS's virtual MFA seeds have 320): check that you pasted all of it"
        )
    return Secret(seed)


def _seed_from_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.netloc.lower() != "totp":
        raise SecretFormatError(f"an otpauth URI for {parts.netloc or 'nothing'!r} is not a TOTP seed; "
                                "AWS MFA uses totp")
    query = parse_qs(parts.query)
    expected = {"algorithm": "SHA1", "digits": "6", "period": "30"}
    for name, want in expected.items():
        got = query.get(name, [want])[-1]
        if got.upper() != want:
            raise SecretFormatError(f"that otpauth URI sets {name}={got}; AWS MFA uses {name}={want}")
    secrets = query.get("secret")
    if not secrets:
        raise SecretFormatError("that otpauth URI has no secret= parameter")
    return unquote(secrets[-1])
