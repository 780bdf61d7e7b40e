"""Malformed and hostile requests against the Archipel gateway, sent over raw sockets (signed
with botocore's SigV4 signer where a signature is needed): each gets the right S3 error, stores
nothing, and the server keeps serving."""
import os
import socket
import sys

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

EP = os.environ["ENDPOINT"]
HOST, PORT = EP.split("//")[1].split(":")
CREDS = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1})
s3 = boto3.client("s3", endpoint_url=EP, region_name="us-east-1", config=cfg)
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


def signed_headers(method, path, body):
    req = AWSRequest(method=method, url=EP + path, data=body)
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    return dict(req.headers)


def raw(request: bytes, body_parts=(), shutdown=False, timeout=10):
    """Sends bytes, optionally half-closes, returns (status, body) of the response."""
    s = socket.create_connection((HOST, int(PORT)), timeout=timeout)
    s.sendall(request)
    try:
        for part in body_parts:
            s.sendall(part)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered (and closed) before taking the whole body
    if shutdown:
        s.shutdown(socket.SHUT_WR)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    if not data:
        return None, b""
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def request_bytes(method, path, headers, content_length):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{PORT}", f"Content-Length: {content_length}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def absent(key):
    try:
        s3.head_object(Bucket="bad", Key=key)
        return False
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"] == 404


s3.create_bucket(Bucket="bad")

# 1. A body cut short: announced 100000 bytes, 40000 sent, then the client hangs up.
body = os.urandom(100_000)
h = signed_headers("PUT", "/bad/truncated", body)
status, _ = raw(request_bytes("PUT", "/bad/truncated", h, len(body)), [body[:40_000]], shutdown=True)
check(status in (None, 400), f"truncated body answered {status}")
check(absent("truncated"), "a truncated body stored nothing")

# 2. A body that is not the one signed (same length): the payload hash does not match.
other = os.urandom(len(body))
status, resp = raw(request_bytes("PUT", "/bad/swapped", h, len(other)), [other])
# (s3s checks the payload as part of the signature: SignatureDoesNotMatch, where AWS says
# XAmzContentSHA256Mismatch; both refuse the body.)
check(status in (400, 403) and (b"XAmzContentSHA256Mismatch" in resp or b"SignatureDoesNotMatch" in resp),
      f"swapped body: {status} {resp[:300]!r}")
check(absent("swapped"), "a body with the wrong hash stored nothing")

# 3. Oversized headers.
big = request_bytes("GET", "/bad/x", {"X-Junk": "a" * 200_000}, 0)
status, _ = raw(big)
check(status in (None, 431, 400), f"oversized headers answered {status}")

# 4. Garbage instead of HTTP.
status, _ = raw(b"HELLO THERE\r\n\r\n")
check(status in (None, 400), f"garbage answered {status}")

# 5. Malformed XML in CompleteMultipartUpload and DeleteObjects.
uid = s3.create_multipart_upload(Bucket="bad", Key="mp")["UploadId"]
s3.upload_part(Bucket="bad", Key="mp", UploadId=uid, PartNumber=1, Body=b"part")
xml = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
path = f"/bad/mp?uploadId={uid}"
status, resp = raw(request_bytes("POST", path, signed_headers("POST", path, xml), len(xml)), [xml])
check(status == 400 and b"MalformedXML" in resp, f"bad completion XML: {status} {resp[:300]!r}")
check(absent("mp"), "a malformed completion stored nothing")
xml = b"<Delete><Object><Key>a</Key></Object"
import base64, hashlib
md5 = base64.b64encode(hashlib.md5(xml).digest()).decode()
req = AWSRequest(method="POST", url=EP + "/bad?delete", data=xml, headers={"Content-MD5": md5})
S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
status, resp = raw(request_bytes("POST", "/bad?delete", dict(req.headers), len(xml)), [xml])
check(status == 400 and b"MalformedXML" in resp, f"bad delete XML: {status} {resp[:300]!r}")

# 6. Invalid bucket names.
for name in ["ab", "UPPER", "-dash", "a" * 64, "bad_underscore"]:
    try:
        s3.create_bucket(Bucket=name)
        check(False, f"bucket {name!r} was created")
    except ClientError as e:
        err = e.response["Error"]
        check(err["Code"] == "InvalidBucketName", f"{name!r}: {err['Code']}")
        # Every error says what was wrong (not botocore's "Unknown" for a missing Message).
        check(err.get("Message") not in (None, "", "Unknown"), f"{name!r}: message {err.get('Message')!r}")
    except Exception:
        checks += 1  # botocore itself refused the name before sending it

# 7. A request signed for another time (clock skew).
import datetime
req = AWSRequest(method="GET", url=EP + "/bad", data=b"")
S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
hdrs = dict(req.headers)
skewed = datetime.datetime.utcnow() - datetime.timedelta(hours=2)
hdrs["X-Amz-Date"] = skewed.strftime("%Y%m%dT%H%M%SZ")
status, resp = raw(request_bytes("GET", "/bad", hdrs, 0))
check(status == 403 and (b"RequestTimeTooSkewed" in resp or b"SignatureDoesNotMatch" in resp), f"skewed: {status} {resp[:300]!r}")

# 8. An x-amz-* header added after signing (unsigned) is refused, not applied.
body = b"unsigned header"
h = signed_headers("PUT", "/bad/unsigned", body)
h["x-amz-meta-evil"] = "1"
status, resp = raw(request_bytes("PUT", "/bad/unsigned", h, len(body)), [body])
check(status == 403 and b"AccessDenied" in resp and b"x-amz-meta-evil" in resp,
      f"unsigned x-amz header: {status} {resp[:300]!r}")
check(absent("unsigned"), "a request with an unsigned x-amz header stored nothing")


def raw_get(url):
    path = url.split(f"{HOST}:{PORT}", 1)[1]
    return raw(request_bytes("GET", path, {}, 0))


# 9. Presigned URLs live at most 7 days (604800 s), as in S3.
s3.put_object(Bucket="bad", Key="presigned", Body=b"p")
status, _ = raw_get(s3.generate_presigned_url("get_object", Params={"Bucket": "bad", "Key": "presigned"}, ExpiresIn=604800))
check(status == 200, f"a 7-day presigned URL: {status}")
status, resp = raw_get(s3.generate_presigned_url("get_object", Params={"Bucket": "bad", "Key": "presigned"}, ExpiresIn=604801))
check(status == 400 and b"AuthorizationQueryParametersError" in resp and b"604800" in resp,
      f"a presigned URL longer than 7 days: {status} {resp[:300]!r}")
s3.delete_object(Bucket="bad", Key="presigned")

# 10. SigV2 is refused (not enabled on this gateway), with a message naming SigV4.
v2 = boto3.client("s3", endpoint_url=EP, region_name="us-east-1",
                  config=Config(signature_version="s3", s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
try:
    v2.list_objects(Bucket="bad")
    check(False, "a SigV2 request was served")
except ClientError as e:
    err = e.response["Error"]
    check(err["Code"] == "InvalidRequest" and "AWS4-HMAC-SHA256" in err.get("Message", ""), f"SigV2: {err}")

# 11. An XML body over the limit gets a 4xx (not 500), without storing or deleting anything.
s3.put_object(Bucket="bad", Key="keep", Body=b"k")
huge = b"<Delete>" + b"<Object><Key>keep</Key></Object>" * 160_000 + b"</Delete>"
md5 = base64.b64encode(hashlib.md5(huge).digest()).decode()
req = AWSRequest(method="POST", url=EP + "/bad?delete", data=huge, headers={"Content-MD5": md5})
S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
# Headers only, as a client waiting on `Expect: 100-continue`: the refusal comes first.
hdrs = dict(req.headers)
hdrs["Expect"] = "100-continue"
status, resp = raw(request_bytes("POST", "/bad?delete", hdrs, len(huge)))
check(status == 400 and (b"MaxMessageLengthExceeded" in resp or b"MalformedXML" in resp),
      f"oversized XML: {status} {resp[:300]!r}")
check(not absent("keep"), "an oversized DeleteObjects deleted nothing")
s3.delete_object(Bucket="bad", Key="keep")

# 12. An anonymous browser-form POST is refused at its fields, before its file is read.
form = (b"--XX\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nanon\r\n"
        b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n")
filler = b"x" * 1_000_000
tail = b"\r\n--XX--\r\n"
hdrs = {"Content-Type": "multipart/form-data; boundary=XX"}
status, resp = raw(request_bytes("POST", "/bad", hdrs, len(form) + len(filler) + len(tail)), [form, filler[:1000]])
check(status == 403 and b"AccessDenied" in resp, f"anonymous form POST: {status} {resp[:300]!r}")
check(absent("anon"), "an anonymous form POST stored nothing")

# The server still serves, and nothing stray was stored.
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bad").get("Contents", [])]
check(keys == [], f"nothing stored: {keys}")
check("bad" in [b["Name"] for b in s3.list_buckets()["Buckets"]], "still serving")
print(f"bad input suite: {checks} checks passed")
