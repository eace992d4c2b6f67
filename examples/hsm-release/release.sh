#!/usr/bin/env bash
# Sign a model release with a key that never leaves a PKCS#11 token, then verify it
# by the token, by the exported public key, under a policy pinning the key, and with
# model_signing (the OMS tool) when it is installed.
#
#   ./release.sh MODEL_DIR [WORK_DIR]
#
# The token is SoftHSM2 (Debian's softhsm2), made in WORK_DIR (default: a temporary
# folder) so nothing outside it changes. With a real HSM or smart card, use its
# module and token instead: KEY_URI below, and its PIN in MODELSIGN_PKCS11_PIN or a
# pin-source file — never on the command line.
set -euo pipefail

model="${1:?usage: release.sh MODEL_DIR [WORK_DIR]}"
work="${2:-$(mktemp -d)}"
module="${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
mkdir -p "$work/tokens"

# A SoftHSM2 token of this example's own, with its user PIN in a file only we read.
export SOFTHSM2_CONF="$work/softhsm2.conf"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$work/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label release --pin 246810 --so-pin 13579 >/dev/null
(umask 077 && printf '246810\n' >"$work/pin")

KEY_URI="pkcs11:token=release;object=model-release?module-path=$module"

# 1. The key pair is made on the token; only the public key comes out.
modelsign keygen --pkcs11 "$KEY_URI&pin-source=file:$work/pin" -o "$work/release"

# 2. Sign: the token signs the digest of the statement (PIN from the pin file).
modelsign sign "$model" --key "$KEY_URI&pin-source=file:$work/pin" --force

# 3. Verify by the token (its public key object, no PIN) and by the exported key.
modelsign verify "$model" --key "$KEY_URI"
modelsign verify "$model" --key "$work/release.pub"

# 4. A policy that trusts the token's key, pinned by fingerprint.
hint="$(modelsign verify "$model" --key "$work/release.pub" --json \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["signer"]["key_hint"])')"
cat >"$work/policy.yaml" <<POLICY
version: 1
signers:
  keys: [{uri: "$KEY_URI", fingerprint: "$hint"}]
POLICY
modelsign verify "$model" --policy "$work/policy.yaml"

# 5. The OMS tool accepts the bundle with the exported public key.
if command -v model_signing >/dev/null; then
  model_signing verify key --signature "$model/model.sig" --public_key "$work/release.pub" "$model"
fi
echo "release.sh: $model signed with the token key $hint"
