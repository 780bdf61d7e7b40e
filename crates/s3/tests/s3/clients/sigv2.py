"""SigV2 against a gateway with [server] allow_sigv2 (ENDPOINT), checked by the gateway's own
constant-time comparison before s3s. botocore's own SigV2 signer (signature version "s3":
headers and presigned URLs) signs the requests that must succeed; requests signed here with
hmac, then altered, must be refused with the gateway's SignatureDoesNotMatch (its message names
SigV2; s3s's own refusal has none). ENDPOINT_V4 is a gateway without allow_sigv2: SigV2 in
disguise is refused there.

The Rust side created bucket "sig-v2" and a key KEY_ID/KEY_SECRET with read and write on it, and
bucket "v4only" with object "k" on the second gateway."""
import base64
import hashlib
import hmac
import http.client
import os
import re
import sys
import time
import urllib.parse
from email.utils import formatdate

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["ENDPOINT"]
EP_V4 = os.environ["ENDPOINT_V4"]
AK, SK = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
KEY_ID, KEY_SECRET = os.environ["KEY_ID"], os.environ["KEY_SECRET"]
GUARD = "The SigV2 signature we calculated"
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


def client(ak=AK, sk=SK, ep=EP):
    return boto3.client(
        "s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=ak, aws_secret_access_key=sk,
        config=Config(signature_version="s3", s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def string_to_sign(method, resource, headers, expires=None):
    """The SigV2 string to sign, from the developer guide (independent of the gateway's)."""
    h = {k.lower(): v for k, v in headers.items()}
    amz = sorted((k, v.strip()) for k, v in h.items() if k.startswith("x-amz-"))
    if expires is not None:
        date = str(expires)
    else:
        date = "" if "x-amz-date" in h else h.get("date", "")
    head = "\n".join([method, h.get("content-md5", ""), h.get("content-type", ""), date])
    return head + "\n" + "".join(f"{k}:{v}\n" for k, v in amz) + resource


def sign(sts, secret=SK):
    return base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()


def flip(sig):
    """Another signature of the same length: its first character changed."""
    return ("B" if sig[0] != "B" else "C") + sig[1:]


def send(method, path, headers=None, body=None, ep=EP):
    host, port = ep.split("//")[1].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    c.request(method, path, body=body, headers=headers or {})
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


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


root = client()

# 1. botocore's SigV2 header signing, root key: objects, tagging, multipart. Bucket-level
# requests (create, list, delete) go through SigV4: botocore signs their resource as
# "/bucket/" while it sends "/bucket", which S3 accepts and s3s does not (nor, reading as s3s
# does, the gateway); s3cmd signs what it sends and does them in SigV2 (sigv2.rs, with s3cmd).
v4 = boto3.client("s3", endpoint_url=EP, region_name="us-east-1", aws_access_key_id=AK, aws_secret_access_key=SK,
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
try:
    root.create_bucket(Bucket="v2-made")
    check(False, "botocore's SigV2 CreateBucket (resource /bucket/) was accepted")
except ClientError as e:
    check(e.response["Error"]["Code"] == "SignatureDoesNotMatch", f"botocore SigV2 CreateBucket: {e.response['Error']}")
v4.create_bucket(Bucket="v2-made")
root.put_object(Bucket="v2-made", Key="dir/one two+three.txt", Body=b"hello v2", ContentType="text/plain",
                Metadata={"who": "sigv2"})
got = root.get_object(Bucket="v2-made", Key="dir/one two+three.txt")
check(got["Body"].read() == b"hello v2" and got["Metadata"].get("who") == "sigv2", f"v2 get: {got}")
head = root.head_object(Bucket="v2-made", Key="dir/one two+three.txt")
check(head["ContentLength"] == 8, f"v2 head: {head}")
listed = [o["Key"] for o in v4.list_objects(Bucket="v2-made").get("Contents", [])]
check(listed == ["dir/one two+three.txt"], f"v2 list: {listed}")
root.put_object_tagging(Bucket="v2-made", Key="dir/one two+three.txt",
                        Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
tags = root.get_object_tagging(Bucket="v2-made", Key="dir/one two+three.txt")["TagSet"]
check(tags == [{"Key": "t", "Value": "1"}], f"v2 tagging (?tagging is signed): {tags}")
up = root.create_multipart_upload(Bucket="v2-made", Key="multi")
part = root.upload_part(Bucket="v2-made", Key="multi", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 1000)
root.complete_multipart_upload(Bucket="v2-made", Key="multi", UploadId=up["UploadId"],
                               MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
check(root.get_object(Bucket="v2-made", Key="multi")["Body"].read() == b"p" * 1000, "v2 multipart")
for k in ["dir/one two+three.txt", "multi"]:
    root.delete_object(Bucket="v2-made", Key=k)
v4.delete_bucket(Bucket="v2-made")

# 2. An access key from the metadata store (the secret s3s would look up, looked up alike).
key = client(KEY_ID, KEY_SECRET)
key.put_object(Bucket="sig-v2", Key="by-key", Body=b"from a key")
check(key.get_object(Bucket="sig-v2", Key="by-key")["Body"].read() == b"from a key", "v2 with an access key")

# 3. botocore's presigned SigV2 URLs (Expires, Signature, AWSAccessKeyId): GET and PUT.
url = root.generate_presigned_url("put_object", Params={"Bucket": "sig-v2", "Key": "presigned"}, ExpiresIn=300)
check("Signature=" in url and "AWSAccessKeyId=" in url and "X-Amz-" not in url, f"a SigV2 presigned URL: {url}")
status, body = send("PUT", path_of(url), body=b"presigned body")
check(status == 200, f"presigned v2 PUT: {status} {body[:300]}")
url = root.generate_presigned_url("get_object", Params={"Bucket": "sig-v2", "Key": "presigned"}, ExpiresIn=300)
status, body = send("GET", path_of(url))
check(status == 200 and body == "presigned body", f"presigned v2 GET: {status} {body[:300]}")

# 4. Presigned URLs altered: another signature of the same length, a later Expires, another key.
u = urllib.parse.urlsplit(url)
q = dict(urllib.parse.parse_qsl(u.query))
for what, change in [("signature", {"Signature": flip(q["Signature"])}),
                     ("expires", {"Expires": str(int(q["Expires"]) + 60)})]:
    bad = urllib.parse.urlencode({**q, **change})
    refused_by_guard(*send("GET", u.path + "?" + bad), f"presigned v2 URL with another {what}")
status, body = send("GET", "/sig-v2/by-key?" + urllib.parse.urlencode(q))
refused_by_guard(status, body, "a presigned v2 URL used for another object")

# 5. Hand-signed headers: right, then each signed part altered after signing.
date = formatdate(usegmt=True)
hdrs = {"Date": date}
status, body = send("GET", "/sig-v2/presigned", {**hdrs, "Authorization": f"AWS {AK}:{sign(string_to_sign('GET', '/sig-v2/presigned', hdrs))}"})
check(status == 200 and body == "presigned body", f"hand-signed v2 GET: {status} {body[:300]}")
good = sign(string_to_sign("GET", "/sig-v2/presigned", hdrs))
refused_by_guard(*send("GET", "/sig-v2/presigned", {**hdrs, "Authorization": f"AWS {AK}:{flip(good)}"}),
                 "a v2 header signature of the same length, one character changed")
put = {"Date": date, "Content-Type": "text/plain", "x-amz-meta-x": "1"}
sig = sign(string_to_sign("PUT", "/sig-v2/hand", put))
status, body = send("PUT", "/sig-v2/hand", {**put, "Authorization": f"AWS {AK}:{sig}"}, b"hand")
check(status == 200, f"hand-signed v2 PUT: {status} {body[:300]}")
for what, altered in [("x-amz-meta-x", {**put, "x-amz-meta-x": "2"}),
                      ("Content-Type", {**put, "Content-Type": "text/html"}),
                      ("an added x-amz-acl", {**put, "x-amz-acl": "public-read"})]:
    refused_by_guard(*send("PUT", "/sig-v2/hand", {**altered, "Authorization": f"AWS {AK}:{sig}"}, b"evil"),
                     f"a v2 PUT whose {what} changed after signing")
refused_by_guard(*send("PUT", "/sig-v2/hand-altered", {**put, "Authorization": f"AWS {AK}:{sig}"}, b"evil"),
                 "a v2 signature replayed for another key")
got = root.get_object(Bucket="sig-v2", Key="hand")
check(got["Body"].read() == b"hand" and got["Metadata"] == {"x": "1"}, f"altered PUTs changed nothing: {got}")
try:
    root.head_object(Bucket="sig-v2", Key="hand-altered")
    check(False, "an altered v2 PUT stored its object")
except ClientError as e:
    check(e.response["Error"]["Code"] in ("404", "NoSuchKey"), f"altered PUTs store nothing: {e.response}")

# 6. botocore with a wrong secret of the same length; an unknown key.
wrong = client(sk=SK[:-1] + ("x" if SK[-1] != "x" else "y"))
try:
    wrong.get_object(Bucket="sig-v2", Key="presigned")
    check(False, "a wrong secret was accepted")
except ClientError as e:
    err = e.response["Error"]
    check(err["Code"] == "SignatureDoesNotMatch" and err.get("Message", "").startswith(GUARD), f"wrong secret: {err}")
try:
    client(ak="AKIAUNKNOWNKEY000000").get_object(Bucket="sig-v2", Key="presigned")
    check(False, "an unknown key was accepted")
except ClientError as e:
    check(e.response["Error"]["Code"] == "InvalidAccessKeyId", f"unknown key: {e.response['Error']}")

# 7. Without allow_sigv2, SigV2 is refused however its query is spelled (s3s decodes the names).
expires = int(time.time()) + 300
sig = sign(string_to_sign("GET", "/v4only/k", {}, expires))
for key_id, signature in [("AWSAccessKeyId", "Signature"), ("AWSAccessKeyI%64", "Sig%6Eature")]:
    query = f"{key_id}={AK}&Expires={expires}&{signature}={urllib.parse.quote(sig, safe='')}"
    status, body = send("GET", f"/v4only/k?{query}", ep=EP_V4)
    check(status == 400 and error(body)[0] == "InvalidRequest", f"SigV2 query {query}: {status} {body[:300]}")
status, body = send("GET", "/v4only/k", {"Date": date, "Authorization": f"AWS {AK}:{sign(string_to_sign('GET', '/v4only/k', {'Date': date}))}"},
                    ep=EP_V4)
check(status == 400 and error(body)[0] == "InvalidRequest", f"SigV2 header without allow_sigv2: {status} {body[:300]}")

print(f"{checks} checks passed")
