"""Credentials: signed by the authority, bound to a subject, expiring; decoding is total."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.secure.credential import Credential, CredentialError, issue, verify
from appliance.secure.identity import Identity

AUTHORITY = Identity.generate()
MEMBER = Identity.generate()


def test_issue_encode_decode_verify():
    cred = issue(AUTHORITY, "default", MEMBER.identifier, {"role": "edge", "relay": "n3"}, now=1000, ttl=60)
    decoded = Credential.decode(cred.encode())
    assert decoded == cred and decoded.attributes == (("relay", "n3"), ("role", "edge"))
    assert verify(decoded, AUTHORITY.public_key, MEMBER.identifier, now=1059) == {"relay": "n3", "role": "edge"}


def test_expired_wrong_subject_wrong_authority_and_tampered_are_rejected():
    cred = issue(AUTHORITY, "default", MEMBER.identifier, {"role": "edge"}, now=1000, ttl=60)
    with pytest.raises(CredentialError, match="expired"):
        verify(cred, AUTHORITY.public_key, MEMBER.identifier, now=1060)
    with pytest.raises(CredentialError, match="not .*I"):
        verify(cred, AUTHORITY.public_key, AUTHORITY.identifier, now=1001)
    with pytest.raises(CredentialError, match="not signed"):
        verify(cred, MEMBER.public_key, MEMBER.identifier, now=1001)
    forged = cred._replace(attributes=(("role", "admin"),))
    with pytest.raises(CredentialError, match="not signed"):
        verify(forged, AUTHORITY.public_key, MEMBER.identifier, now=1001)
    longer = cred._replace(expires_at=10**9)
    with pytest.raises(CredentialError, match="not signed"):
        verify(longer, AUTHORITY.public_key, MEMBER.identifier, now=1001)


@given(st.binary(max_size=300))
def test_decoding_is_total(data):
    try:
        Credential.decode(data)
    except CredentialError:
        pass
