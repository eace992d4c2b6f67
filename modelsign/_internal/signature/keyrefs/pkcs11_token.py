"""A session with the PKCS#11 token a URI names, through PyKCS11.

Finding the module (``module-path``, ``module-name`` in the usual folders, or
``MODELSIGN_PKCS11_MODULE``), choosing the one token the URI's attributes
match, logging in with a PIN from the first source that has one, and finding
objects. Every ``PyKCS11Error`` becomes a modelsign error with a code and the
URI's ``where`` (:func:`pkcs11_errors`): no PKCS#11 failure leaves a traceback.

A module is loaded once per process however many users it has; the last
:meth:`Token.close` finalizes and unloads it, so a later session reads the
module's configuration afresh.
"""

from __future__ import annotations

import contextlib
import os
import sysconfig
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, NoReturn

import PyKCS11

from ....codes import Code
from ....errors import InputError, ModelsignError, SignatureError
from . import PIN_SOURCES, Secrets
from .pkcs11_uri import Pkcs11Uri

MODULE_ENV: Final = "MODELSIGN_PKCS11_MODULE"
PIN_ENV: Final = "MODELSIGN_PKCS11_PIN"

_MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
#: Where ``module-name`` is looked for: SoftHSM's folder, then the distributions' PKCS#11 folders.
MODULE_DIRS: Final = (
    "/usr/lib/softhsm",
    f"/usr/lib/{_MULTIARCH}/softhsm",
    f"/usr/lib/{_MULTIARCH}/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/local/lib/pkcs11",
)

# How each path attribute reads from the slot's (CK_SLOT_INFO) or token's (CK_TOKEN_INFO) info.
_SLOT_FIELDS: Final = {"slot-description": "slotDescription", "slot-manufacturer": "manufacturerID"}
_TOKEN_FIELDS: Final = {
    "token": "label",
    "manufacturer": "manufacturerID",
    "serial": "serialNumber",
    "model": "model",
}
_LIBRARY_FIELDS: Final = {
    "library-manufacturer": "manufacturerID",
    "library-description": "libraryDescription",
}
_PIN_CODES: Final = {
    PyKCS11.CKR_PIN_INCORRECT: Code.PKCS11_PIN_INCORRECT,
    PyKCS11.CKR_PIN_INVALID: Code.PKCS11_PIN_INCORRECT,
    PyKCS11.CKR_PIN_LEN_RANGE: Code.PKCS11_PIN_INCORRECT,
    PyKCS11.CKR_PIN_LOCKED: Code.PKCS11_PIN_LOCKED,
}
_GONE: Final = (
    PyKCS11.CKR_TOKEN_NOT_PRESENT,
    PyKCS11.CKR_DEVICE_REMOVED,
    PyKCS11.CKR_SLOT_ID_INVALID,
)


def ckr_name(value: int) -> str:
    """``CKR_PIN_INCORRECT`` for 0xA0; the hex value for a vendor's own code."""
    name = PyKCS11.CKR.get(value)
    return name if isinstance(name, str) else f"CKR 0x{value & 0xFFFFFFFF:08X}"


def error_for(exc: PyKCS11.PyKCS11Error, where: str, doing: str) -> ModelsignError:
    """The modelsign error for a PKCS#11 failure while ``doing`` something."""
    value = int(exc.value)
    name = ckr_name(value) if value >= 0 else f"PyKCS11 error {value} ({exc.text})"
    code = _PIN_CODES.get(value)
    if code is Code.PKCS11_PIN_LOCKED:
        message = f"the PIN is locked ({name}): the token's security officer must unlock it"
        return InputError(message, code=code, path=where)
    if code is not None:
        return InputError(f"the PIN is incorrect ({name})", code=code, path=where)
    if value in _GONE:
        return InputError(
            f"{name}: the token went away while {doing}",
            code=Code.PKCS11_TOKEN_NOT_FOUND,
            path=where,
        )
    return SignatureError(f"{name} while {doing}", code=Code.PKCS11_ERROR, path=where)


@contextlib.contextmanager
def pkcs11_errors(where: str, doing: str) -> Iterator[None]:
    """Turn a PyKCS11Error raised inside into the modelsign error for it."""
    try:
        yield
    except PyKCS11.PyKCS11Error as exc:
        raise error_for(exc, where, doing) from None


def find_module(uri: Pkcs11Uri, env: Mapping[str, str]) -> str:
    """The module file the URI names: ``module-path``, ``module-name``, or the environment's."""
    where = uri.where
    if uri.module_path is not None:
        if os.path.isfile(uri.module_path):
            return uri.module_path
        if not os.path.isdir(uri.module_path):
            raise _module_missing(where, f"module-path {uri.module_path!r} does not exist")
        if uri.module_name is None:
            raise _module_missing(
                where, f"module-path {uri.module_path!r} is a folder: add module-name=NAME"
            )
        return _search(where, uri.module_name, [uri.module_path])
    if uri.module_name is not None:
        return _search(where, uri.module_name, MODULE_DIRS)
    default = env.get(MODULE_ENV)
    if default:
        if not os.path.isfile(default):
            raise _module_missing(where, f"{MODULE_ENV}={default!r} is not a file")
        return default
    raise _module_missing(
        where,
        "the URI names no PKCS#11 module: add ?module-path=/path/to/module.so or "
        f"?module-name=NAME, or set {MODULE_ENV}",
    )


def _search(where: str, name: str, folders: Sequence[str]) -> str:
    """``NAME``, ``NAME.so`` or ``libNAME.so`` (or ``.dylib``) in the first folder that has it."""
    candidates = [name, f"{name}.so", f"lib{name}.so", f"{name}.dylib", f"lib{name}.dylib"]
    for folder in folders:
        for candidate in candidates:
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    raise _module_missing(where, f"no module named {name!r} in {', '.join(folders)}")


def _module_missing(where: str, message: str) -> InputError:
    return InputError(message, code=Code.PKCS11_MODULE_NOT_FOUND, path=where)


def load_module(path: str, where: str) -> Any:
    """Load and initialize a module (``C_Initialize``); the PyKCS11Lib to unload later."""
    lib = PyKCS11.PyKCS11Lib()
    try:
        # One name per file: a module loaded twice under two names is initialized twice.
        return lib.load(os.path.realpath(path))
    except PyKCS11.PyKCS11Error as exc:
        if int(exc.value) == -1:
            raise _module_missing(where, f"cannot load {path!r} as a PKCS#11 module") from None
        raise error_for(exc, where, f"initializing the module {path!r}") from None


def _blank(value: object) -> str:
    """A CK_*_INFO text field: fixed width, padded with spaces (or NULs)."""
    return str(value).rstrip(" \x00")


class Token:
    """An open session with the token a URI names, and the module it came through."""

    def __init__(self, lib: Any, slot: int, info: Any, session: Any, where: str) -> None:
        self.lib = lib
        self.slot = slot
        self.info = info  # CK_TOKEN_INFO
        self.session = session
        self.where = where

    @classmethod
    def open(cls, uri: Pkcs11Uri, env: Mapping[str, str], *, rw: bool = False) -> Token:
        """Load the module, choose the token and open a session (read-write when ``rw``)."""
        path = find_module(uri, env)
        lib = load_module(path, uri.where)
        try:
            with pkcs11_errors(uri.where, "choosing the token"):
                _check_library(lib, uri, path)
                slot, info = _choose_token(lib, uri)
                flags = PyKCS11.CKF_RW_SESSION if rw else 0
                session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | flags)
        except BaseException:
            lib.unload()
            raise
        return cls(lib, slot, info, session, uri.where)

    @property
    def label(self) -> str:
        return _blank(self.info.label)

    def needs_login(self) -> bool:
        return bool(self.info.flags & PyKCS11.CKF_LOGIN_REQUIRED)

    def login(self, pin: str | None) -> None:
        """Log the user in; None logs in through the reader's PIN pad, where it has one."""
        try:
            self.session.login(pin)
        except PyKCS11.PyKCS11Error as exc:
            if int(exc.value) != PyKCS11.CKR_USER_ALREADY_LOGGED_IN:
                raise error_for(exc, self.where, f"logging in to token {self.label!r}") from None

    def find(self, template: Sequence[tuple[int, Any]]) -> list[Any]:
        """The handles of the objects matching ``template``."""
        with pkcs11_errors(self.where, "looking for objects"):
            return list(self.session.findObjects(list(template)))

    def close(self) -> None:
        """Close the session (which logs out when it was the last) and release the module.

        Closing again does nothing.
        """
        session, self.session = self.session, None
        if session is None:
            return
        try:
            with pkcs11_errors(self.where, "closing the session"):
                session.closeSession()
        finally:
            self.lib.unload()

    def abandon(self) -> None:
        """Close after a failure: that first error is the one to report, not a second one."""
        session, self.session = self.session, None
        if session is None:
            return
        with contextlib.suppress(PyKCS11.PyKCS11Error):
            session.closeSession()
        self.lib.unload()


@contextlib.contextmanager
def opened(uri: Pkcs11Uri, env: Mapping[str, str], *, rw: bool = False) -> Iterator[Token]:
    """A session for the length of a ``with`` block."""
    token = Token.open(uri, env, rw=rw)
    try:
        yield token
    except BaseException:
        token.abandon()
        raise
    token.close()


def _check_library(lib: Any, uri: Pkcs11Uri, path: str) -> None:
    """The module must be the one the URI's library-* attributes describe."""
    info = lib.getInfo()
    wanted = {n: uri.path[n] for n in _LIBRARY_FIELDS if n in uri.path}
    found = {n: _blank(getattr(info, f)) for n, f in _LIBRARY_FIELDS.items()}
    mismatched = [n for n in wanted if wanted[n] != found[n]]
    version = uri.library_version
    if version is not None and tuple(info.libraryVersion) != version:
        mismatched.append("library-version")
    if mismatched:
        major, minor = info.libraryVersion
        raise _module_missing(
            uri.where,
            f"the module {path!r} is not the one the URI describes ({', '.join(mismatched)}): "
            f"it is {found['library-description']!r} {major}.{minor} "
            f"by {found['library-manufacturer']!r}",
        )


def _choose_token(lib: Any, uri: Pkcs11Uri) -> tuple[int, Any]:
    """The one initialized token whose slot and token attributes match the URI's."""
    seen: list[str] = []
    matching: list[tuple[int, Any]] = []
    for slot in lib.getSlotList(tokenPresent=True):
        info = lib.getTokenInfo(slot)
        if not info.flags & PyKCS11.CKF_TOKEN_INITIALIZED:
            continue
        seen.append(
            f"{_blank(info.label)!r} (serial {_blank(info.serialNumber)!r}, slot {int(slot)})"
        )
        if _token_matches(lib, int(slot), info, uri):
            matching.append((int(slot), info))
    if len(matching) == 1:
        return matching[0]
    names = (*_TOKEN_FIELDS, "slot-id", *_SLOT_FIELDS)
    asked = ", ".join(f"{n}={uri.path[n]!r}" for n in names if n in uri.path)
    if not matching:
        tokens = "; ".join(seen) if seen else "none"
        _token_error(uri, f"no token matches {asked or 'the URI'} (tokens seen: {tokens})")
    _token_error(
        uri,
        f"{len(matching)} tokens match {asked or 'the URI'}: name one with token=, serial= "
        "or slot-id=",
    )


def _token_error(uri: Pkcs11Uri, message: str) -> NoReturn:
    raise InputError(message, code=Code.PKCS11_TOKEN_NOT_FOUND, path=uri.where)


def _token_matches(lib: Any, slot: int, info: Any, uri: Pkcs11Uri) -> bool:
    for name, field in _TOKEN_FIELDS.items():
        if name in uri.path and uri.path[name] != _blank(getattr(info, field)):
            return False
    if uri.slot_id is not None and uri.slot_id != slot:
        return False
    if not any(name in uri.path for name in _SLOT_FIELDS):
        return True
    slot_info = lib.getSlotInfo(slot)
    return all(
        uri.path[name] == _blank(getattr(slot_info, field))
        for name, field in _SLOT_FIELDS.items()
        if name in uri.path
    )


# -- the PIN ------------------------------------------------------------------------------


def read_pin_file(uri: Pkcs11Uri, path: str) -> str:
    """The PIN in a ``pin-source`` file, without its trailing line end."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(
            f"cannot read the pin-source file {path!r}: {reason}",
            code=Code.PKCS11_PIN_REQUIRED,
            path=uri.where,
        ) from None
    return text.removesuffix("\n").removesuffix("\r")


def find_pin(
    uri: Pkcs11Uri, secrets: Secrets, env: Mapping[str, str], *, prompt: str | None
) -> str | None:
    """The PIN from the first source that has one, in the documented order; None if none.

    The URI's ``pin-value``, its ``pin-source`` file, ``secrets.pin``,
    ``MODELSIGN_PKCS11_PIN`` in ``env``, then ``secrets.ask(prompt)`` when
    ``prompt`` is given.
    """
    if uri.pin_value is not None:
        return uri.pin_value
    if uri.pin_source is not None:
        return read_pin_file(uri, uri.pin_source)
    if secrets.pin is not None:
        return secrets.pin
    if env.get(PIN_ENV):
        return env[PIN_ENV]
    if secrets.ask is not None and prompt is not None:
        return secrets.ask(prompt)
    return None


def log_in(token: Token, uri: Pkcs11Uri, secrets: Secrets, env: Mapping[str, str]) -> None:
    """Log in to ``token`` when it asks for it, with a PIN found by :func:`find_pin`."""
    if not token.needs_login():
        return
    if token.info.flags & PyKCS11.CKF_USER_PIN_LOCKED:
        raise InputError(
            f"the PIN of token {token.label!r} is locked; its security officer must unlock it",
            code=Code.PKCS11_PIN_LOCKED,
            path=uri.where,
        )
    pin = find_pin(uri, secrets, env, prompt=f"PIN for PKCS#11 token {token.label!r}: ")
    if pin is None and not token.info.flags & PyKCS11.CKF_PROTECTED_AUTHENTICATION_PATH:
        raise InputError(
            f"token {token.label!r} needs its PIN: give it by {PIN_SOURCES} (in a terminal)",
            code=Code.PKCS11_PIN_REQUIRED,
            path=uri.where,
        )
    token.login(pin)


__all__ = [
    "MODULE_DIRS",
    "MODULE_ENV",
    "PIN_ENV",
    "Token",
    "ckr_name",
    "error_for",
    "find_module",
    "find_pin",
    "load_module",
    "log_in",
    "opened",
    "pkcs11_errors",
    "read_pin_file",
]
