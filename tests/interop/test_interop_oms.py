"""Interoperability with the OMS tool (``model_signing`` 1.1.1), both ways, through both CLIs.

Every case runs for a bare EC key and for a certificate chain (leaf and
intermediate in the bundle, the root as the verifier's trust anchor). Each test
signs two identical copies of a model, one with ``modelsign sign`` and one with
``model_signing sign``, and has the other tool verify each: signatures must
cross over, ignored files must not matter, and tampering must fail in both
tools, with modelsign saying exactly what changed. The commands of one step run
two at a time: process start-up is most of the cost.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import modelsign
from modelsign._internal.discover import GIT_PATHS
from tests.helpers import oms, oms_cases
from tests.helpers.oms import Credentials, codes, ok, output, run, run_all
from tests.helpers.pki import build_pki
from tests.helpers.signing import flip_byte, payload_bytes, payload_of

pytestmark = [
    pytest.mark.slow,  # model_signing and modelsign as subprocesses: seconds per case
    pytest.mark.skipif(
        not oms.MODEL_SIGNING.exists(), reason=f"model_signing CLI not found at {oms.MODEL_SIGNING}"
    ),
]

# Names whose order differs between a per-component sort (what model_signing
# writes) and a code-point sort (what the OMS spec and modelsign write), a
# nested folder, and empty files, beside the example model's own files.
EXTRA_FILES: dict[str, bytes] = {
    "A": b"upper-case A\n",
    "a/b": b"a, slash, b\n",
    "a-b": b"a, dash, b\n",
    "a.b": b"a, dot, b\n",
    "nested/deeper/deepest/blob.bin": bytes(range(256)) * 4,
    "empty": b"",
    "nested/empty.txt": b"",
}
TINY_FILES = ("LICENSE", "README.md", "config.json", "model.safetensors")
ALL_FILES = sorted([*TINY_FILES, *EXTRA_FILES])
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module", params=["key", "certificate"])
def creds(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    """An EC P-256 key made with cryptography, or a root → intermediate → leaf PKI."""
    folder = tmp_path_factory.mktemp(f"creds-{request.param}")
    if request.param == "key":
        return Credentials.for_key(*oms.write_ec_key(folder, ec.SECP256R1()))
    return Credentials.for_pki(build_pki(), folder)


@pytest.fixture
def model(tiny_model: Path) -> Path:
    """The example model plus the awkward names, a nested folder and empty files."""
    for name, data in EXTRA_FILES.items():
        path = tiny_model / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert sorted(p.relative_to(tiny_model).as_posix() for p in _files(tiny_model)) == ALL_FILES
    return tiny_model


@pytest.fixture
def twin(model: Path, tmp_path: Path) -> Path:
    """An identical copy of ``model`` (same folder name), for model_signing to sign."""
    return Path(shutil.copytree(model, tmp_path / "for-model_signing" / model.name))


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_material(creds: Credentials, sig: Path) -> None:
    """The bundle names the key by its hint, or carries leaf and intermediate (not the root)."""
    material = oms.bundle_of(sig)["verificationMaterial"]
    if creds.method == "key":
        assert creds.public_key is not None
        assert material["publicKey"]["hint"] == _sha256(creds.public_key)
    else:
        assert len(material["x509CertificateChain"]["certificates"]) == 2


def _verified(proc: oms.Proc, files: int) -> dict[str, object]:
    """The result of a ``modelsign verify --json`` that succeeded on ``files`` files."""
    result: dict[str, object] = json.loads(ok(proc).stdout)
    assert result["verdict"] == "verified"
    assert result["files_verified"] == files
    return result


def _oms_ok(proc: oms.Proc) -> None:
    assert "Verification succeeded" in output(ok(proc))


# -- folders, both ways, signature inside and outside ------------------------


@pytest.mark.parametrize("where", ["inside", "subfolder", "outside"])
def test_folder_signatures_cross_over(
    creds: Credentials, model: Path, twin: Path, tmp_path: Path, where: str
) -> None:
    if where == "inside":
        # modelsign's default place, MODEL/model.sig, which model_signing must skip.
        ours, theirs = model / "model.sig", twin / "model.sig"
        recorded: set[str] = {"model.sig"}
    elif where == "subfolder":
        (model / "sigs").mkdir()
        (twin / "sigs").mkdir()
        ours, theirs = model / "sigs" / "m.sig", twin / "sigs" / "m.sig"
        recorded = {"sigs/m.sig"}
    else:
        (tmp_path / "signatures").mkdir()
        ours, theirs = tmp_path / "signatures" / "ours.sig", tmp_path / "signatures" / "theirs.sig"
        recorded = set()
    for proc in run_all(
        [
            creds.ms_sign(model, signature=None if where == "inside" else ours),
            creds.oms_sign(twin, theirs),
        ]
    ):
        ok(proc)
    for sig in (ours, theirs):
        _check_material(creds, sig)
        ignore_paths = set(payload_of(sig)["predicate"]["serialization"]["ignore_paths"])
        # The signature's own place is recorded (relative to the model) when inside it;
        # modelsign also always leaves out the provenance attestation's default place.
        # modelsign's claims file sits beside its signature and is recorded the same way.
        claims = {r.replace("m.sig", "m.claims.jsonl") for r in recorded}
        claims = {"claims.jsonl"} if recorded == {"model.sig"} else claims
        extra = {"model.provenance.sig", *claims} if sig == ours else set()
        assert ignore_paths - set(GIT_PATHS) == recorded | extra
    # modelsign lists resources in code-point order, as the spec says; model_signing
    # by path component. Each verifier must accept the other's order.
    assert oms.resource_names(ours) == ALL_FILES
    assert oms.resource_names(theirs) == oms.component_order(ALL_FILES) != ALL_FILES

    by_them, by_us = run_all(
        [
            creds.oms_verify(model, ours),
            # Inside: found at modelsign's default place, without --signature.
            creds.ms_verify(twin, signature=None if where == "inside" else theirs),
        ]
    )
    _oms_ok(by_them)
    result = _verified(by_us, len(ALL_FILES))
    assert result["manifest_digest"] is None  # nothing but OMS v1.0 in their signature
    signer = result["signer"]
    assert isinstance(signer, dict) and signer["kind"] == creds.method
    if creds.method == "certificate":
        assert signer["subject"] == "CN=Model Publisher,O=modelsign tests"


# -- single files ------------------------------------------------------------


def _middle_of_last_tensor(path: Path) -> int:
    weights = modelsign.build_manifest(path).files[0].weights
    assert weights is not None
    t = weights.tensors[-1]
    return t.offset + t.length // 2


def test_single_file_signatures_cross_over(
    creds: Credentials, tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    gguf = tiny_models[1] / "tiny-model-Q8_0.gguf"
    ours = gguf.with_name(gguf.name + ".sig")  # modelsign's default: FILE.sig beside it
    theirs = tmp_path / "elsewhere" / "gguf.sig"
    theirs.parent.mkdir()
    for proc in run_all([creds.ms_sign(gguf), creds.oms_sign(gguf, theirs)]):
        ok(proc)
    signed = _sha256(gguf)
    for sig in (ours, theirs):
        _check_material(creds, sig)
        st = payload_of(sig)
        assert st["subject"][0]["name"] == gguf.name
        resources = st["predicate"]["resources"]
        assert [(r["name"], r["digest"]) for r in resources] == [(".", signed)]

    by_them, by_us = run_all(
        [creds.oms_verify(gguf, ours), creds.ms_verify(gguf, signature=theirs)]
    )
    _oms_ok(by_them)
    _verified(by_us, 1)

    flip_byte(gguf, _middle_of_last_tensor(gguf), mask=0xFF)
    by_them, by_us = run_all(
        [creds.oms_verify(gguf, ours), creds.ms_verify(gguf, signature=theirs)]
    )
    assert by_them.returncode == 1 and "Hash mismatch for '.'" in output(by_them)
    assert codes(by_us) == [("FILE_MODIFIED", gguf.name, None)]
    (problem,) = oms.errors(by_us)
    assert (problem["expected"], problem["actual"]) == (signed, _sha256(gguf))


# -- ignored paths ------------------------------------------------------------


def test_ignored_paths_are_neither_required_nor_checked(
    creds: Credentials, model: Path, tmp_path: Path
) -> None:
    (model / "scratch" / "sub").mkdir(parents=True)
    (model / "scratch" / "notes.txt").write_text("draft\n")
    (model / "scratch" / "sub" / "x.bin").write_bytes(b"\x00" * 64)
    (model / "run.log").write_text("step 1\n")
    twin = Path(shutil.copytree(model, tmp_path / "for-model_signing" / model.name))
    ours, theirs = model / "model.sig", twin / "model.sig"
    for proc in run_all(
        [
            creds.ms_sign(model, "--ignore", "scratch", "--ignore", "*.log"),
            creds.oms_sign(
                twin, theirs, "--ignore-paths", twin / "scratch", "--ignore-paths", twin / "run.log"
            ),
        ]
    ):
        ok(proc)
    for sig in (ours, theirs):
        recorded = payload_of(sig)["predicate"]["serialization"]["ignore_paths"]
        assert {"scratch", "run.log", "model.sig"} <= set(recorded)
        assert sorted(oms.resource_names(sig)) == ALL_FILES

    # Change one ignored file and delete the others: neither tool may notice,
    # and neither is told again at verification what to ignore.
    for m in (model, twin):
        (m / "scratch" / "notes.txt").write_text("rewritten after signing\n")
        (m / "scratch" / "sub" / "x.bin").unlink()
        (m / "run.log").unlink()
    results = run_all(
        [
            creds.oms_verify(model, ours),
            creds.ms_verify(model),
            creds.oms_verify(twin, theirs),
            creds.ms_verify(twin),
        ]
    )
    _oms_ok(results[0])
    _verified(results[1], len(ALL_FILES))
    _oms_ok(results[2])
    _verified(results[3], len(ALL_FILES))


# -- tampering ----------------------------------------------------------------


def _tamper(m: Path) -> None:
    """One byte of a weight file and of another file, a file added, removed and renamed."""
    flip_byte(m / WEIGHTS, (m / WEIGHTS).stat().st_size // 2, mask=0xFF)
    flip_byte(m / "a" / "b", 0, mask=0xFF)
    (m / "nested" / "deeper" / "added.bin").write_bytes(b"not signed\n")
    (m / "a.b").unlink()
    (m / "config.json").rename(m / "config.renamed.json")


def _model_signing_findings(proc: oms.Proc) -> dict[str, set[str]]:
    """What a failed ``model_signing verify`` lists: hash mismatches, extra and missing files."""
    assert proc.returncode == 1, output(proc)
    text = output(proc)
    assert "Verification failed" in text
    found = {"mismatch": set(re.findall(r"Hash mismatch for '([^']*)'", text))}
    for kind, says in (("extra", "Extra files found"), ("missing", "Missing files")):
        m = re.search(says + r" in model '[^']*': ([^\"]*)\"", text)
        found[kind] = set(m.group(1).split(", ")) if m else set()
    return found


def test_tampering_fails_in_both_tools(creds: Credentials, model: Path, twin: Path) -> None:
    """Every change is reported by both verifiers, for signatures made by either tool.

    modelsign names the modified tensor when its own manifest rides in the signature.
    """
    for proc in run_all([creds.ms_sign(model), creds.oms_sign(twin, twin / "model.sig")]):
        ok(proc)
    signed = {n: _sha256(model / n) for n in ("a/b", "a.b", WEIGHTS)}
    tensor = oms.safetensors_tensor_at(model / WEIGHTS, (model / WEIGHTS).stat().st_size // 2)
    _tamper(model)
    _tamper(twin)
    results = run_all(
        [
            creds.oms_verify(model, model / "model.sig"),
            creds.ms_verify(model),
            creds.oms_verify(twin, twin / "model.sig"),
            creds.ms_verify(twin),
        ]
    )
    want_them = {
        "mismatch": {WEIGHTS, "a/b"},
        "extra": {"nested/deeper/added.bin", "config.renamed.json"},
        "missing": {"a.b", "config.json"},
    }
    want_us = [
        ("FILE_EXTRA", "nested/deeper/added.bin", None),
        ("FILE_MISSING", "a.b", None),
        ("FILE_MODIFIED", "a/b", None),
        ("FILE_MODIFIED", WEIGHTS, None),
        ("FILE_RENAMED", "config.json", None),
    ]
    assert _model_signing_findings(results[0]) == want_them
    assert _model_signing_findings(results[2]) == want_them
    assert codes(results[1]) == sorted([*want_us, ("TENSOR_MODIFIED", WEIGHTS, tensor)])
    assert codes(results[3]) == want_us  # no manifest in their signature: no tensor verdict
    for proc in (results[1], results[3]):
        problems = {(p["code"], p["file"]): p for p in oms.errors(proc)}
        assert problems["FILE_RENAMED", "config.json"]["actual"] == "config.renamed.json"
        assert problems["FILE_MISSING", "a.b"]["expected"] == signed["a.b"]
        for name in ("a/b", WEIGHTS):
            got = problems["FILE_MODIFIED", name]
            assert (got["expected"], got["actual"]) == (signed[name], _sha256(model / name))


# -- keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "curve"),
    [("keygen", "secp256r1"), ("keygen-ec-p384", "secp384r1"), ("cryptography-sec1", "secp521r1")],
)
def test_keys_work_in_both_tools(source: str, curve: str, model: Path, tmp_path: Path) -> None:
    """Keys from ``modelsign keygen`` (P-256 by default) load in model_signing; a SEC1
    ("BEGIN EC PRIVATE KEY") P-521 key made with cryptography works in both."""
    if source.startswith("keygen"):
        prefix = tmp_path / "keys" / "k"
        prefix.parent.mkdir()
        key_type = ["--type", source.removeprefix("keygen-")] if "-" in source else []
        proc = ok(run(oms.modelsign("keygen", *key_type, "-o", prefix)))
        private, public = prefix.with_suffix(".key"), prefix.with_suffix(".pub")
        hint = proc.stderr.rsplit("key hint: ", 1)[1].strip()
    else:
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
        private, public = oms.write_ec_key(tmp_path / "keys", ec.SECP521R1(), fmt=fmt)
        hint = _sha256(public)
    loaded = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(loaded, ec.EllipticCurvePublicKey) and loaded.curve.name == curve
    creds = Credentials.for_key(private, public)
    ours, theirs = tmp_path / "ours.sig", tmp_path / "theirs.sig"
    for proc in run_all([creds.ms_sign(model, signature=ours), creds.oms_sign(model, theirs)]):
        ok(proc)
    for sig in (ours, theirs):  # both tools name the key the same way
        assert oms.bundle_of(sig)["verificationMaterial"]["publicKey"]["hint"] == hint

    by_them, by_us = run_all(
        [creds.oms_verify(model, ours), creds.ms_verify(model, signature=theirs)]
    )
    _oms_ok(by_them)
    _verified(by_us, len(ALL_FILES))

    flip_byte(model / "a.b", 0, mask=0xFF)
    by_them, by_us = run_all(
        [creds.oms_verify(model, ours), creds.ms_verify(model, signature=theirs)]
    )
    assert _model_signing_findings(by_them)["mismatch"] == {"a.b"}
    assert codes(by_us) == [("FILE_MODIFIED", "a.b", None)]


# -- determinism ----------------------------------------------------------------


def test_statement_payload_is_deterministic(model: Path, tmp_path: Path) -> None:
    private, public = oms.write_ec_key(tmp_path / "keys", ec.SECP256R1())
    creds = Credentials.for_key(private, public)
    first, second = tmp_path / "first.sig", tmp_path / "second.sig"
    for proc in run_all(
        [creds.ms_sign(model, signature=first), creds.ms_sign(model, signature=second)]
    ):
        ok(proc)
    payload = payload_bytes(first)
    assert payload == payload_bytes(second)
    assert payload == rfc8785.dumps(json.loads(payload))  # canonical JSON
    sigs = [oms.bundle_of(s)["dsseEnvelope"]["signatures"][0]["sig"] for s in (first, second)]
    assert sigs[0] != sigs[1]  # ECDSA signatures are randomized; the statement is not


# -- names and hidden files, each way, then tampered ---------------------------------------------

# The layouts the tests above do not cover (oms_cases has the full set, for the adapter).
LAYOUTS = [c for c in oms_cases.CASES if c.name in ("special-names", "dotfiles")]


@pytest.mark.parametrize("case", LAYOUTS, ids=[c.name for c in LAYOUTS])
def test_layouts_cross_over_and_tampering_fails(
    creds: Credentials, case: oms_cases.Case, tmp_path: Path
) -> None:
    """Spaces, ``:``, ``#``, ``%``, non-ASCII and order-sensitive names; hidden files and
    folders; git files at the top level (left out by both tools) but not below it (§6.2.1:
    ``sub/.git`` is signed like any folder). Signatures sit inside the model."""
    ours, theirs = case.build(tmp_path / "ours"), case.build(tmp_path / "theirs")
    our_sig, their_sig = ours / "model.sig", theirs / "model.sig"
    for proc in run_all([creds.ms_sign(ours), creds.oms_sign(theirs, their_sig)]):
        ok(proc)
    assert oms.resource_names(our_sig) == case.signed  # code-point order
    assert oms.resource_names(their_sig) == oms.component_order(case.signed)

    for m in (ours, theirs):
        case.touch_unsigned(m)
    by_them, by_us = run_all([creds.oms_verify(ours, our_sig), creds.ms_verify(theirs)])
    _oms_ok(by_them)
    _verified(by_us, len(case.signed))

    for m in (ours, theirs):
        case.do_tamper(m)
    by_them, by_us = run_all([creds.oms_verify(ours, our_sig), creds.ms_verify(theirs)])
    assert _model_signing_findings(by_them)["mismatch"] == {case.tamper}
    assert codes(by_us) == [("FILE_MODIFIED", case.tamper, None)]


def test_hugging_face_snapshots_cross_over(creds: Credentials, tmp_path: Path) -> None:
    """A cache snapshot is links into ``../../blobs``: recorded as links (allow_symlinks),
    named by the commit (§6.5); ``model_signing --allow_symlinks`` reads it the same way."""
    from tests.helpers.hf_cache import make_hf_cache

    files = {"config.json": b'{"model_type": "bert"}', "weights.bin": bytes(range(256)) * 16}
    ours = make_hf_cache(tmp_path / "a", files) / "snapshots" / ("a" * 40)
    theirs = make_hf_cache(tmp_path / "b", files) / "snapshots" / ("a" * 40)
    our_sig, their_sig = tmp_path / "ours.sig", tmp_path / "theirs.sig"
    for proc in run_all(
        [
            creds.ms_sign(ours, signature=our_sig),
            creds.oms_sign(theirs, their_sig, "--allow_symlinks"),
        ]
    ):
        ok(proc)
    st = payload_of(our_sig)
    assert st["subject"][0]["name"] == "a" * 40
    assert st["predicate"]["serialization"]["allow_symlinks"] is True
    assert oms.resource_names(our_sig) == ["config.json", "weights.bin"]
    by_them, by_us = run_all(
        [
            creds.oms_verify(ours, our_sig, "--allow_symlinks"),
            creds.ms_verify(theirs, signature=their_sig),
        ]
    )
    _oms_ok(by_them)
    _verified(by_us, 2)
    for snapshot in (ours, theirs):
        blob = (snapshot / "weights.bin").resolve()
        blob.chmod(0o644)
        flip_byte(blob, 7, mask=0xFF)
    by_them, by_us = run_all(
        [
            creds.oms_verify(ours, our_sig, "--allow_symlinks"),
            creds.ms_verify(theirs, signature=their_sig),
        ]
    )
    assert _model_signing_findings(by_them)["mismatch"] == {"weights.bin"}
    assert ("FILE_MODIFIED", "weights.bin", None) in codes(by_us)
