import hashlib
import hmac

import pytest

from signature import SIGNATURE_TOLERANCE_MS, NonceCache, SignatureError, Verified, sign, signed_text, verify

BODY = b'{"a":1}'
NONCE = "nonce-0123456789abcdef"
PATH = "/sandboxes?x=1"
SECRETS = [b"s3cret"]


def test_fixed_vector_matches_hmac_and_the_rust_reference():
    text = signed_text(1_000_000, NONCE, "post", PATH, BODY)
    body_hash = hashlib.sha256(BODY).hexdigest()
    assert text == f"v2\n1000000\n{NONCE}\nPOST\n{PATH}\n{body_hash}".encode()
    header = sign(b"s3cret", 1_000_000, NONCE, "POST", PATH, BODY)
    expected = hmac.new(b"s3cret", text, hashlib.sha256).hexdigest()
    assert header == f"t=1000000,n={NONCE},v2={expected}"
    # The same vector is pinned in Rust: `signature_matches_the_known_vector` in crates/protocol/src/provider.rs.
    assert expected == "7b1a7a12412fc8de7c6915805da2a0f7e3fb7f4a625ec6baa2c0a1c65fb84c4e"
    assert sign("s3cret", 1_000_000, NONCE, "POST", PATH, BODY) == header  # str secrets are UTF-8


def test_round_trip_and_tolerance_edges():
    header = sign(b"s3cret", 1_000_000, NONCE, "POST", PATH, BODY)
    assert verify(SECRETS, header, "POST", PATH, BODY, 1_000_000) == Verified(1_000_000, NONCE)
    verify(SECRETS, header, "POST", PATH, BODY, 1_000_000 + SIGNATURE_TOLERANCE_MS)
    verify(SECRETS, header, "POST", PATH, BODY, 1_000_000 - SIGNATURE_TOLERANCE_MS)
    # Part order and spaces do not matter; upper-case hex is accepted; unknown parts are ignored.
    t_part, n_part, v_part = header.split(",")
    verify(SECRETS, f" {v_part.upper().replace('V2=', 'v2=')} , {n_part},{t_part}, v0=zz", "POST", PATH, BODY, 1_000_000)


def test_the_previous_secret_is_accepted_during_a_rotation():
    old = sign(b"old", 5_000, NONCE, "GET", "/images/b1", b"")
    assert verify([b"new", b"old"], old, "GET", "/images/b1", b"", 5_000).nonce == NONCE
    for secrets in ([b"new", None], [b"new"], [b"new", b""]):
        with pytest.raises(SignatureError) as err:
            verify(secrets, old, "GET", "/images/b1", b"", 5_000)
        assert err.value.kind == "mismatch"
    with pytest.raises(SignatureError):
        verify([None, ""], sign(b"", 5_000, NONCE, "GET", "/", b""), "GET", "/", b"", 5_000)


GOOD = sign(b"s3cret", 1_000_000, NONCE, "POST", PATH, BODY)
V1 = "t=1000000,v1=bf0ed7e1bad53ca0126991e26a25594eec1a05788bfffab7498f204a43e09fce"


@pytest.mark.parametrize(
    "header,method,path,body,secret,now,kind",
    [
        (None, "POST", PATH, BODY, b"s3cret", 1_000_000, "missing"),
        ("t=1", "POST", PATH, b"", b"s3cret", 1, "malformed"),
        ("garbage", "POST", PATH, b"", b"s3cret", 1, "malformed"),
        (V1, "POST", PATH, BODY, b"s3cret", 1_000_000, "malformed"),
        ("t=abc,n=" + NONCE + ",v2=" + "0" * 64, "POST", PATH, b"", b"s3cret", 1, "malformed"),
        ("t=1,n=short,v2=" + "0" * 64, "POST", PATH, b"", b"s3cret", 1, "malformed"),
        ("t=1,n=" + NONCE + ",v2=0", "POST", PATH, b"", b"s3cret", 1, "malformed"),
        ("t=1,n=" + NONCE + ",v2=00", "POST", PATH, b"", b"s3cret", 1, "malformed"),
        (GOOD, "POST", PATH, b'{"a":2}', b"s3cret", 1_000_000, "mismatch"),
        (GOOD, "DELETE", PATH, BODY, b"s3cret", 1_000_000, "mismatch"),
        (GOOD, "POST", "/sandboxes", BODY, b"s3cret", 1_000_000, "mismatch"),
        (GOOD, "POST", PATH, BODY, b"other", 1_000_000, "mismatch"),
        (GOOD.replace(NONCE, "nonce-fedcba9876543210"), "POST", PATH, BODY, b"s3cret", 1_000_000, "mismatch"),
        (GOOD, "POST", PATH, BODY, b"s3cret", 1_000_000 + SIGNATURE_TOLERANCE_MS + 1, "stale"),
        (GOOD, "POST", PATH, BODY, b"s3cret", 1_000_000 - SIGNATURE_TOLERANCE_MS - 1, "stale"),
    ],
)
def test_refusals(header, method, path, body, secret, now, kind):
    with pytest.raises(SignatureError) as err:
        verify([secret], header, method, path, body, now)
    assert err.value.kind == kind


def test_a_nonce_is_refused_a_second_time_within_the_window():
    cache = NonceCache()
    first = Verified(1_000_000, NONCE)
    cache.admit(first, 1_000_000)
    for now in (1_000_001, 1_000_000 + SIGNATURE_TOLERANCE_MS):
        with pytest.raises(SignatureError) as err:
            cache.admit(first, now)
        assert err.value.kind == "replayed"
    cache.admit(Verified(1_000_000, "nonce-second-0000000"), 1_000_000)
    assert len(cache) == 2


def test_a_full_nonce_cache_forgets_the_expired_and_refuses_rather_than_forget_live_ones():
    cache = NonceCache(limit=3)
    for i in range(3):
        cache.admit(Verified(0, f"nonce-{i:016}"), 0)
    with pytest.raises(SignatureError):
        cache.admit(Verified(0, "nonce-one-too-many"), 0)
    cache.admit(Verified(2 * SIGNATURE_TOLERANCE_MS, "nonce-one-too-many"), 2 * SIGNATURE_TOLERANCE_MS)
    assert len(cache) == 1
