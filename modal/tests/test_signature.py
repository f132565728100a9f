import hashlib
import hmac
import re

import pytest

from signature import SIGNATURE_TOLERANCE_MS, SignatureError, sign, verify

BODY = b'{"a":1}'


def test_fixed_vector_matches_hmac_and_the_rust_reference():
    header = sign(b"s3cret", 1_000_000, BODY)
    assert re.fullmatch(r"t=1000000,v1=[0-9a-f]{64}", header)
    expected = hmac.new(b"s3cret", b'1000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1000000,v1={expected}"
    # The same vector is pinned in Rust: `signature_matches_the_known_vector` in crates/protocol/src/provider.rs
    # (and `printf '1000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret` prints it).
    assert expected == "bf0ed7e1bad53ca0126991e26a25594eec1a05788bfffab7498f204a43e09fce"
    assert sign("s3cret", 1_000_000, BODY) == header  # str secrets are UTF-8


def test_round_trip_and_tolerance_edges():
    header = sign(b"s3cret", 1_000_000, BODY)
    verify(b"s3cret", header, BODY, 1_000_000)
    verify(b"s3cret", header, BODY, 1_000_000 + SIGNATURE_TOLERANCE_MS)
    verify(b"s3cret", header, BODY, 1_000_000 - SIGNATURE_TOLERANCE_MS)
    # Part order and spaces do not matter; upper-case hex is accepted; unknown parts are ignored.
    t_part, v_part = header.split(",")
    verify(b"s3cret", f" {v_part.upper().replace('V1=', 'v1=')} , {t_part}, v0=zz", BODY, 1_000_000)


@pytest.mark.parametrize(
    "header,body,secret,now,kind",
    [
        (None, BODY, b"s3cret", 1_000_000, "missing"),
        ("t=1", b"", b"s3cret", 1, "malformed"),
        ("garbage", b"", b"s3cret", 1, "malformed"),
        ("t=abc,v1=00", b"", b"s3cret", 1, "malformed"),
        ("t=1,v1=0", b"", b"s3cret", 1, "malformed"),  # odd-length hex
        ("t=1,v1=zz", b"", b"s3cret", 1, "malformed"),
        ("v1=" + "0" * 64, b"", b"s3cret", 1, "malformed"),
        (sign(b"s3cret", 1_000_000, BODY), b'{"a":2}', b"s3cret", 1_000_000, "mismatch"),
        (sign(b"s3cret", 1_000_000, BODY), BODY, b"other", 1_000_000, "mismatch"),
        ("t=1000000,v1=", BODY, b"s3cret", 1_000_000, "mismatch"),
        (sign(b"s3cret", 1_000_000, BODY), BODY, b"s3cret", 1_000_000 + SIGNATURE_TOLERANCE_MS + 1, "stale"),
        (sign(b"s3cret", 1_000_000, BODY), BODY, b"s3cret", 1_000_000 - SIGNATURE_TOLERANCE_MS - 1, "stale"),
    ],
)
def test_refusals(header, body, secret, now, kind):
    with pytest.raises(SignatureError) as err:
        verify(secret, header, body, now)
    assert err.value.kind == kind
