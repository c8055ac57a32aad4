"""Checks /sms/token's `verification_token` as an app's backend would, with an independent JOSE
implementation (PyJWT, pinned in scripts/requirements-test.txt), against a running local-api and
its sandbox: python verification-token-check.py API_URL SANDBOX_URL (run by scripts/api-fuzz.sh).

It verifies a real verification's token with the keys of GET /.well-known/jwks.json (picked by
the header's `kid`, EdDSA only, issuer and audience checked), checks every claim, and requires
PyJWT to refuse: a forged payload under the real signature, the same claims signed by another
Ed25519 key under the same `kid`, `alg: none`, HS256 keyed with the public key, another audience,
another issuer, and the token once expired. Exits non-zero, saying which, on the first failure.
"""

import base64
import json
import sys
import time
import urllib.parse

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

API, SANDBOX = sys.argv[1:3]
CLIENT = "sandbox-client"
PHONE = "+447400123495"
http = requests.Session()
http.trust_env = False  # no proxies: 127.0.0.1 only


def fail(message):
    sys.exit(f"verification-token-check: {message}")


def post(path, body):
    response = http.post(f"{API}{path}", json=body, timeout=15, allow_redirects=False)
    if response.status_code != 200:
        fail(f"POST {path} answered {response.status_code} {response.text[:300]}")
    return response.json()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(what, because, token, key, **options):
    """PyJWT must refuse `token` for the reason `because` (an exception class), with the right key
    and checks unless `options` change them."""
    checks = {"algorithms": ["EdDSA"], "audience": CLIENT, "issuer": API, **options}
    try:
        jwt.decode(token, key, **checks)
    except jwt.InvalidTokenError as refusal:
        if not isinstance(refusal, because):
            fail(f"PyJWT refused {what} as {type(refusal).__name__}, not {because.__name__}")
        print(f"  refused: {what} ({type(refusal).__name__})")
        return
    fail(f"PyJWT accepted {what}")


# A verification, through the sandbox: its code from the outbox.
started = post("/sms/auth", {"client_id": CLIENT, "login_hint": PHONE})
outbox = http.get(f"{SANDBOX}/sandbox/messages?to={urllib.parse.quote(PHONE)}", timeout=10).json()
before = int(time.time())
verified = post("/sms/token", {"code": outbox[0]["code"], "auth_req_id": started["auth_req_id"],
                               "client_id": CLIENT, "nonce": started["nonce"]})
token = verified["verification_token"]

jwks_response = http.get(f"{API}/.well-known/jwks.json", timeout=10)
if jwks_response.status_code != 200 or "max-age" not in jwks_response.headers.get("cache-control", ""):
    fail(f"GET /.well-known/jwks.json answered {jwks_response.status_code} {jwks_response.headers}")
jwks = jwt.PyJWKSet.from_dict(jwks_response.json())
header = jwt.get_unverified_header(token)
if header.get("alg") != "EdDSA" or not header.get("kid"):
    fail(f"the header is {header}")
key = next((k for k in jwks.keys if k.key_id == header["kid"]), None)
if key is None:
    fail(f"no key of the JWKS has the token's kid {header['kid']!r}")

claims = jwt.decode(token, key.key, algorithms=["EdDSA"], audience=CLIENT, issuer=API,
                    options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]})
expected = {"iss": API, "aud": CLIENT, "sub": verified["sub"], "phone_number": PHONE,
            "phone_number_verified": True}
if {name: claims.get(name) for name in expected} != expected:
    fail(f"the claims are {claims}, not {expected}")
if not (before - 5 <= claims["iat"] <= int(time.time()) + 5) or claims["exp"] - claims["iat"] != 300:
    fail(f"iat {claims['iat']} / exp {claims['exp']}: not now and 300 s later")
if not isinstance(claims["jti"], str) or len(claims["jti"]) < 16:
    fail(f"jti {claims['jti']!r} is not a unique identifier")
print(f"  verified by PyJWT {jwt.__version__}: kid {header['kid']}, {PHONE[:4]}… for {CLIENT}")

head, payload, signature = token.split(".")
forged_claims = {**claims, "phone_number": "+447400999999"}
forged = f"{head}.{b64(json.dumps(forged_claims).encode())}.{signature}"
refused("a forged payload", jwt.InvalidSignatureError, forged, key.key)

other_key = Ed25519PrivateKey.generate()
resigned = jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": header["kid"]})
refused("another key under the same kid", jwt.InvalidSignatureError, resigned, key.key)

unsigned = f"{b64(json.dumps({'alg': 'none', 'kid': header['kid']}).encode())}.{payload}."
refused("alg none", jwt.InvalidAlgorithmError, unsigned, key.key)

public_bytes = base64.urlsafe_b64decode(next(k for k in jwks_response.json()["keys"]
                                             if k["kid"] == header["kid"])["x"] + "==")
hs256 = jwt.encode(claims, public_bytes, algorithm="HS256", headers={"kid": header["kid"]})
refused("HS256 keyed with the public key", jwt.InvalidAlgorithmError, hs256, key.key)

refused("another audience", jwt.InvalidAudienceError, token, key.key, audience="another-client")
refused("another issuer", jwt.InvalidIssuerError, token, key.key, issuer="https://attacker.example")
# 301 s on: past `exp` (the issued-at check is left out, as a clock that late would fail it).
refused("the token once expired", jwt.ExpiredSignatureError, token, key.key, leeway=-301,
        options={"verify_iat": False})
print("verification-token-check: ok")
