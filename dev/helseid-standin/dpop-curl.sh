#!/usr/bin/env bash
# Development helper for calling a local PIT server with curl through the HelseID stand-in.
# Uses the development client's RSA key (dev-client.pem / dev-client.jwk.json) both for the client assertion and for
# DPoP proofs, as NHN's samples do. Needs openssl and jq. Never use this key anywhere but the local stand-in.
#
#   dpop-curl.sh token [BASE]              prints an access token (scopes read+write), BASE default http://localhost:5080
#   dpop-curl.sh proof METHOD URL [TOKEN]  prints a DPoP proof for METHOD URL (query stripped), with ath when TOKEN given
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key="$here/dev-client.pem"
client_id=pit-dev-client
jwk=$(jq -c '{e, kty, n}' "$here/dev-client.jwk.json")

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
jws() {
  local input
  input="$(printf '%s' "$1" | b64url).$(printf '%s' "$2" | b64url)"
  printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -sign "$key" -binary | b64url)"
}
proof() { # METHOD URL [NONCE] [TOKEN]
  local htu=${2%%[?#]*} ath=""
  if [ -n "${4:-}" ]; then ath=$(printf '%s' "$4" | openssl dgst -sha256 -binary | b64url); fi
  local payload
  payload=$(jq -cn --arg m "$1" --arg u "$htu" --arg n "${3:-}" --arg a "$ath" --arg jti "$(openssl rand -hex 16)" \
    --argjson iat "$(date +%s)" \
    '{jti: $jti, htm: $m, htu: $u, iat: $iat} + (if $n != "" then {nonce: $n} else {} end) + (if $a != "" then {ath: $a} else {} end)')
  jws "{\"typ\":\"dpop+jwt\",\"alg\":\"RS256\",\"jwk\":$jwk}" "$payload"
}

case "${1:-}" in
  token)
    issuer="${2:-http://localhost:5080}/helseid-standin"
    endpoint="$issuer/connect/token"
    now=$(date +%s)
    assertion=$(jws '{"alg":"RS256","typ":"client-authentication+jwt"}' \
      "$(jq -cn --arg c "$client_id" --arg a "$issuer" --arg j "$(openssl rand -hex 16)" --argjson now "$now" \
        '{iss: $c, sub: $c, aud: $a, jti: $j, iat: $now, nbf: $now, exp: ($now + 60)}')")
    form=(--data-urlencode grant_type=client_credentials --data-urlencode "client_id=$client_id"
          --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
          --data-urlencode "client_assertion=$assertion" --data-urlencode "scope=nhn:pit/api.read nhn:pit/api.write")
    # First request: the stand-in answers 400 use_dpop_nonce with a DPoP-Nonce header, as HelseID does.
    nonce=$(curl -s -o /dev/null -D - -H "DPoP: $(proof POST "$endpoint")" "${form[@]}" "$endpoint" \
      | awk 'tolower($1) == "dpop-nonce:" { print $2 }' | tr -d '\r')
    curl -sf -H "DPoP: $(proof POST "$endpoint" "$nonce")" "${form[@]}" "$endpoint" | jq -r .access_token
    ;;
  proof)
    proof "$2" "$3" "" "${4:-}"
    ;;
  *)
    sed -n '2,9p' "$0"; exit 2 ;;
esac
