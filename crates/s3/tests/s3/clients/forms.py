"""Browser-form POST uploads (multipart/form-data to a bucket) against a gateway with
[server] allow_sigv2 (ENDPOINT): SigV2 forms built here by hand (AWSAccessKeyId, policy,
signature = base64(HMAC-SHA1(secret, policy as sent))), SigV4 forms from boto3's
generate_presigned_post, each posted as real multipart bodies with http.client.

A SigV2 form's signature is checked by the gateway itself in constant time before s3s: a
tampered one is refused with the gateway's SignatureDoesNotMatch (its message names SigV2;
s3s's own refusal has none). Field names are read as s3s reads them (any case, the last of a
repeated name). ENDPOINT_V4 is a gateway without allow_sigv2: a SigV2 form is refused there
however its field names are spelled.

The Rust side created bucket "sig-v2" and a key KEY_ID/KEY_SECRET with read and write on it,
and bucket "v4only" on the second gateway."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["ENDPOINT"]
EP_V4 = os.environ["ENDPOINT_V4"]
AK, SK = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
KEY_ID, KEY_SECRET = os.environ["KEY_ID"], os.environ["KEY_SECRET"]
GUARD = "The SigV2 signature we calculated"
BOUNDARY = "----archipel-form-boundary"
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


def client(ep=EP):
    return boto3.client(
        "s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=AK, aws_secret_access_key=SK,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def multipart(fields, data, file_name="file"):
    """A multipart/form-data body: the fields in order, then the file part."""
    out = b""
    for name, value in fields:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").encode() + \
            value.encode() + b"\r\n"
    out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_name}\"; filename=\"upload.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return out + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def post(bucket, body, ep=EP):
    host, port = ep.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request("POST", f"/{bucket}", body=body,
              headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data.decode("utf-8", "replace")


def error(body):
    code = re.search(r"<Code>(.*?)</Code>", body)
    msg = re.search(r"<Message>(.*?)</Message>", body)
    return (code.group(1) if code else None), (msg.group(1) if msg else "")


def refused_by_guard(status, body, what):
    code, msg = error(body)
    check(status == 403 and code == "SignatureDoesNotMatch" and msg.startswith(GUARD),
          f"{what}: {status} {body[:300]}")


def policy_for(bucket, key, secs=300):
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + secs))
    doc = {"expiration": expiration,
           "conditions": [{"bucket": bucket}, {"key": key}, ["content-length-range", 0, 16 * 1024 * 1024]]}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def sign(policy, secret=SK):
    return base64.b64encode(hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()).decode()


def flip(sig, at=0):
    """Another signature of the same length: the character at `at` changed."""
    c = "B" if sig[at] != "B" else "C"
    return sig[:at] + c + sig[at + 1:]


def v2_fields(bucket, key, ak=AK, sk=SK, names=("AWSAccessKeyId", "policy", "signature")):
    policy = policy_for(bucket, key)
    return [("key", key), (names[0], ak), (names[1], policy), (names[2], sign(policy, sk))]


def stored(bucket, key, c=None):
    try:
        return (c or client()).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        check(e.response["Error"]["Code"] in ("404", "NoSuchKey"), f"get {bucket}/{key}: {e.response}")
        return None


def uploaded(status, body, what):
    check(status in (200, 201, 204), f"{what}: {status} {body[:300]}")


# 1. A SigV2 form signed with the root key: the object lands. The file (3 MiB) streams past
# the fields the gateway read.
data = bytes(range(256)) * (3 * 4096)
uploaded(*post("sig-v2", multipart(v2_fields("sig-v2", "form/v2"), data)), "a SigV2 form")
check(stored("sig-v2", "form/v2") == data, "the SigV2 form's file landed whole")

# 2. An access key from the metadata store (the secret s3s would look up, looked up alike).
uploaded(*post("sig-v2", multipart(v2_fields("sig-v2", "form/key", KEY_ID, KEY_SECRET), b"by a key")),
         "a SigV2 form signed with an access key")
check(stored("sig-v2", "form/key") == b"by a key", "the access key's form landed")

# 3. Field names in any case, as s3s reads them.
uploaded(*post("sig-v2", multipart(v2_fields("sig-v2", "form/case", names=("awsaccesskeyid", "Policy", "SIGNATURE")),
                                   b"any case"), ), "a SigV2 form with its names in other cases")
check(stored("sig-v2", "form/case") == b"any case", "the form with names in other cases landed")

# 4. Tampered forms: refused by the gateway before s3s, nothing stored.
f = v2_fields("sig-v2", "form/bad")
sig = f[3][1]
for what, fields in [
    ("another signature of the same length (first character)", f[:3] + [("signature", flip(sig))]),
    ("another signature of the same length (last character)", f[:3] + [("signature", flip(sig, 26))]),
    ("its policy changed after signing (another key allowed)",
     [f[0], f[1], ("policy", policy_for("sig-v2", "form/other")), f[3]]),
    ("the right signature, then a wrong one (s3s reads the last)", f + [("Signature", flip(sig))]),
    ("the right signature of another secret", v2_fields("sig-v2", "form/bad", sk=SK[:-1] + ("x" if SK[-1] != "x" else "y"))),
]:
    refused_by_guard(*post("sig-v2", multipart(fields, b"evil")), f"a SigV2 form with {what}")
check(stored("sig-v2", "form/bad") is None and stored("sig-v2", "form/other") is None, "tampered forms stored nothing")
# A wrong signature then the right one: the last counts, as in s3s.
uploaded(*post("sig-v2", multipart(f[:3] + [("signature", flip(sig)), ("Signature", sig)], b"last counts")),
         "a SigV2 form whose last signature is right")
check(stored("sig-v2", "form/bad") == b"last counts", "the form whose last signature is right landed")

# 5. An unknown key.
status, body = post("sig-v2", multipart(v2_fields("sig-v2", "form/unknown", ak="AKIAUNKNOWNKEY000000"), b"x"))
check(status == 403 and error(body)[0] == "InvalidAccessKeyId", f"a SigV2 form with an unknown key: {status} {body[:300]}")

# 6. SigV4 forms from boto3 (checked by s3s, in constant time): the object lands; a tampered
# x-amz-signature is refused.
pp = client().generate_presigned_post("sig-v2", "form/v4", ExpiresIn=300)
check("x-amz-signature" in pp["fields"] and "policy" in pp["fields"], f"a SigV4 form: {pp}")
uploaded(*post("sig-v2", multipart(list(pp["fields"].items()), b"sigv4 form")), "a SigV4 form from boto3")
check(stored("sig-v2", "form/v4") == b"sigv4 form", "the SigV4 form landed")
bad = dict(pp["fields"])
bad["x-amz-signature"] = flip(bad["x-amz-signature"])
status, body = post("sig-v2", multipart(list(bad.items()), b"evil"))
check(status == 403 and error(body)[0] == "SignatureDoesNotMatch", f"a tampered SigV4 form: {status} {body[:300]}")

# 7. Without allow_sigv2 a SigV2 form is refused, however its field names are spelled.
for names in [("AWSAccessKeyId", "policy", "signature"), ("awsaccesskeyid", "Policy", "Signature")]:
    status, body = post("v4only", multipart(v2_fields("v4only", "form", names=names), b"x"), ep=EP_V4)
    check(status == 400 and error(body)[0] == "InvalidRequest", f"a SigV2 form {names} without allow_sigv2: {status} {body[:300]}")
check(stored("v4only", "form", client(EP_V4)) is None, "SigV2 forms stored nothing without allow_sigv2")

# 8. A form trickled a few bytes at a time (each its own TCP segment) is read as well: the
# gateway parses the fields again as they come.
body = multipart(v2_fields("sig-v2", "form/trickle"), b"trickled")
host, port = EP.split("//")[1].split(":")
s = socket.create_connection((host, int(port)), timeout=30)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall((f"POST /sig-v2 HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
           f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nConnection: close\r\n\r\n").encode())
for i in range(0, len(body), 7):
    s.sendall(body[i:i + 7])
    time.sleep(0.001)
answer = b""
while chunk := s.recv(65536):
    answer += chunk
s.close()
status = int(answer.split(b" ", 2)[1])
uploaded(status, answer.decode("utf-8", "replace"), "a form sent 7 bytes at a time")
check(stored("sig-v2", "form/trickle") == b"trickled", "the trickled form landed")

print(f"{checks} checks passed")
