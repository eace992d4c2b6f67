"""PKCS#11 URIs (RFC 7512): what is read, and everything the grammar refuses."""

from __future__ import annotations

import pytest

from modelsign._internal.signature.keyrefs.pkcs11_uri import format_id, parse, redact
from modelsign.errors import InputError

MODULE = "module-path=/usr/lib/softhsm/libsofthsm2.so"


def refused(uri: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse(uri)
    assert info.value.code == "KEY_URI_INVALID"
    return info.value


def test_every_path_attribute_is_read() -> None:
    uri = parse(
        "pkcs11:token=Release%20Token;manufacturer=SoftHSM%20project;serial=2b67c028e9da3e14;"
        "model=SoftHSM%20v2;slot-id=17;slot-description=SoftHSM%20slot;slot-manufacturer=SoftHSM;"
        "library-manufacturer=SoftHSM;library-description=Implementation%20of%20PKCS11;"
        "library-version=2.6;object=model-key;id=%01%02%ff;type=private?" + MODULE
    )
    assert uri.path == {
        "token": "Release Token",
        "manufacturer": "SoftHSM project",
        "serial": "2b67c028e9da3e14",
        "model": "SoftHSM v2",
        "slot-id": "17",
        "slot-description": "SoftHSM slot",
        "slot-manufacturer": "SoftHSM",
        "library-manufacturer": "SoftHSM",
        "library-description": "Implementation of PKCS11",
        "library-version": "2.6",
        "object": "model-key",
        "type": "private",
    }
    assert uri.id == b"\x01\x02\xff"
    assert (uri.object, uri.type, uri.slot_id, uri.library_version) == (
        "model-key",
        "private",
        17,
        (2, 6),
    )
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert uri.module_name is None and uri.pin_value is None and uri.pin_source is None
    assert uri.describe_object() == "object='model-key' id=%01%02%ff"


def test_query_attributes_and_defaults() -> None:
    uri = parse("PKCS11:object=k?module-name=softhsm2&pin-value=12%2634")
    assert (uri.module_name, uri.pin_value, uri.module_path) == ("softhsm2", "12&34", None)
    assert uri.library_version is None and uri.slot_id is None and uri.type is None
    assert parse("pkcs11:library-version=3").library_version == (3, 0)  # M means M.0
    empty = parse("pkcs11:")
    assert empty.path == {} and not empty.names_object()
    assert parse("pkcs11:object=k?").path == {"object": "k"}  # an empty query is allowed


@pytest.mark.parametrize(
    ("source", "path"),
    [
        ("file:/run/pin", "/run/pin"),
        ("file:///run/pin%20file", "/run/pin file"),
        ("file://localhost/run/pin", "/run/pin"),
        ("/run/pin", "/run/pin"),
    ],
)
def test_pin_source_is_a_file_uri_or_a_path(source: str, path: str) -> None:
    assert parse(f"pkcs11:object=k?pin-source={source.replace('%', '%25')}").pin_source == path


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("|/usr/bin/pinentry", "does not run a program"),
        ("https://example.com/pin", "only file: URIs"),
        ("file://otherhost/pin", "only a local file"),
        ("run/pin", "absolute path"),
    ],
)
def test_pin_sources_not_read(source: str, says: str) -> None:
    assert says in refused(f"pkcs11:object=k?pin-source={source}").message


def test_text_values_are_utf8_and_ids_are_bytes() -> None:
    uri = parse("pkcs11:token=acute%3A%20%3E%3E%C3%A1%3C%3C;id=%00%C3")
    assert uri.path["token"] == "acute: >>\u00e1<<"
    assert uri.id == b"\x00\xc3"  # not text: not decoded
    assert "not UTF-8" in refused("pkcs11:token=%C3").message


def test_vendor_attributes_are_accepted_and_ignored() -> None:
    uri = parse("pkcs11:object=k;x-vendor_thing=yes?x-other=1&" + MODULE)
    assert uri.path == {"object": "k"}
    assert refused("pkcs11:object=k;x-a=1;x-a=2").message == "path attribute 'x-a' is given twice"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("pkcs12:object=k", "starts with 'pkcs11:'"),
        ("object=k", "starts with 'pkcs11:'"),
        ("pkcs11:object=k;object=j", "path attribute 'object' is given twice"),
        ("pkcs11:object=k?module-name=a&module-name=b", "'module-name' is given twice"),
        ("pkcs11:colour=blue", "unknown path attribute 'colour'"),
        ("pkcs11:object=k?pin=1234", "unknown query attribute 'pin'"),
        ("pkcs11:object=k?module-path=/m.so;pin-source=x", "module-path: the character ';'"),
        ("pkcs11:object", "'object' has no '='"),
        ("pkcs11:object=k;;token=t", "path attribute '' has no '='"),
        ("pkcs11:object=k;", "path attribute '' has no '='"),
        ("pkcs11:object=a%2", "object: bad percent-escape '%2'"),
        ("pkcs11:object=a%zz", "object: bad percent-escape '%zz'"),
        ("pkcs11:id=%0g", "id: bad percent-escape '%0g'"),
        ("pkcs11:token=My Token", "token: the character ' ' must be written %20"),
        ("pkcs11:object=a/b", "object: the character '/' must be written %2F"),
        ("pkcs11:object=caf\u00e9", "object: the character '\u00e9' must be written %C3%A9"),
        ("pkcs11:object=k?module-name=a#b", "module-name: the character '#' must be written %23"),
        ("pkcs11:slot-id=1a", "slot-id must be a decimal number"),
        ("pkcs11:slot-id=", "slot-id must be a decimal number"),
        ("pkcs11:library-version=2.", "library-version must be MAJOR[.MINOR]"),
        ("pkcs11:type=secret", "type must be one of private, public, cert, secret-key, data"),
        ("pkcs11:object=k?module-path=lib/softhsm.so", "module-path must be an absolute path"),
        ("pkcs11:object=k?module-name=/usr/lib/x.so", "module-name is a module's name"),
        ("pkcs11:object=k?pin-value=1&pin-source=/p", "by pin-value or by pin-source, not both"),
    ],
)
def test_refused(uri: str, says: str) -> None:
    assert says in refused(uri).message


def test_the_pin_value_is_never_shown() -> None:
    uri = parse("pkcs11:object=k?pin-value=s3cret&" + MODULE)
    assert uri.pin_value == "s3cret"
    assert "s3cret" not in uri.where and "s3cret" not in repr(uri)
    assert uri.where == "pkcs11:object=k?" + MODULE
    for bad in (
        "pkcs11:object=k?pin-value=s3%ret",  # a bad escape
        "pkcs11:object=k?pin-value=s3 cret",  # a character to escape
        "pkcs11:object=k;pin-value=s3cret",  # in the path: an unknown attribute
        "pkcs11:object=k;colour=red?pin-value=s3cret&" + MODULE,
    ):
        error = refused(bad)
        assert "s3" not in error.diagnostics() and "cret" not in error.diagnostics()


def test_redact_keeps_the_rest_as_written() -> None:
    assert redact("pkcs11:object=k") == "pkcs11:object=k"
    assert redact("pkcs11:object=k?pin-value=1") == "pkcs11:object=k"
    assert redact("pkcs11:object=k?a=1&pin-value=1&b=%20") == "pkcs11:object=k?a=1&b=%20"
    assert format_id(b"\x00\xab") == "%00%ab" and format_id(b"") == "''"
