"""boto3 against the Archipel gateway: every operation family, S3's error codes, presigned URLs
fetched with curl. Reads ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY from the
environment; exits non-zero (with the failing check) on any mismatch."""
import hashlib
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["ENDPOINT"]
cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1})
s3 = boto3.client("s3", endpoint_url=EP, region_name="us-east-1", config=cfg)
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


def error_code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def curl(*args):
    return subprocess.run(["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", *args],
                          capture_output=True, check=True).stdout


# ---- buckets ----
s3.create_bucket(Bucket="boto")
check(error_code(s3.create_bucket, Bucket="boto")[0] == "BucketAlreadyOwnedByYou", "create twice")
check(error_code(s3.create_bucket, Bucket="Bad_Name")[0] == "InvalidBucketName", "invalid bucket name")
check("boto" in [b["Name"] for b in s3.list_buckets()["Buckets"]], "list_buckets")
s3.head_bucket(Bucket="boto")
check(error_code(s3.head_bucket, Bucket="nope-nope")[1] == 404, "head missing bucket")
loc = s3.get_bucket_location(Bucket="boto")
check(loc.get("LocationConstraint") in (None, ""), "location us-east-1")
check("Status" not in s3.get_bucket_versioning(Bucket="boto"), "unversioned")
acl = s3.get_bucket_acl(Bucket="boto")
check(acl["Grants"][0]["Permission"] == "FULL_CONTROL" and acl["Owner"]["ID"], "bucket acl")

# ---- objects: metadata round trip, etag = MD5 ----
body = os.urandom(300_000)
exp = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
put = s3.put_object(Bucket="boto", Key="dir/obj", Body=body, ContentType="application/x-test",
                    ContentEncoding="identity", ContentDisposition='attachment; filename="x.bin"',
                    CacheControl="max-age=60", ContentLanguage="fr", Expires=exp,
                    Metadata={"colour": "blue", "n": "1"})
md5 = hashlib.md5(body).hexdigest()
check(put["ETag"] == f'"{md5}"', "etag is md5")
h = s3.head_object(Bucket="boto", Key="dir/obj")
check(h["ContentLength"] == len(body), "head length")
check(h["ContentType"] == "application/x-test", "content-type")
check(h["ContentEncoding"] == "identity", "content-encoding")
check(h["ContentDisposition"] == 'attachment; filename="x.bin"', "content-disposition")
check(h["CacheControl"] == "max-age=60", "cache-control")
check(h["ContentLanguage"] == "fr", "content-language")
check(h["Expires"] == exp, "expires")
check(h["Metadata"] == {"colour": "blue", "n": "1"}, "user metadata")
g = s3.get_object(Bucket="boto", Key="dir/obj")
check(g["Body"].read() == body, "get body")
check(g["ETag"] == f'"{md5}"', "get etag")

# ---- ranges and conditionals ----
r = s3.get_object(Bucket="boto", Key="dir/obj", Range="bytes=100-199")
check(r["Body"].read() == body[100:200] and r["ContentRange"] == f"bytes 100-199/{len(body)}", "range")
check(r["ResponseMetadata"]["HTTPStatusCode"] == 206, "206")
r = s3.get_object(Bucket="boto", Key="dir/obj", Range="bytes=-10")
check(r["Body"].read() == body[-10:], "suffix range")
check(error_code(s3.get_object, Bucket="boto", Key="dir/obj", Range=f"bytes={len(body)}-")[0] == "InvalidRange", "416")
check(error_code(s3.get_object, Bucket="boto", Key="dir/obj", IfMatch='"0000"')[1] == 412, "If-Match")
check(error_code(s3.get_object, Bucket="boto", Key="dir/obj", IfNoneMatch=f'"{md5}"')[1] == 304, "If-None-Match")
later = h["LastModified"] + timedelta(seconds=5)
earlier = h["LastModified"] - timedelta(seconds=5)
check(error_code(s3.get_object, Bucket="boto", Key="dir/obj", IfModifiedSince=later)[1] == 304, "If-Modified-Since")
check(error_code(s3.get_object, Bucket="boto", Key="dir/obj", IfUnmodifiedSince=earlier)[1] == 412, "If-Unmodified-Since")
s3.get_object(Bucket="boto", Key="dir/obj", IfMatch=f'"{md5}"', IfModifiedSince=earlier)
o = s3.get_object(Bucket="boto", Key="dir/obj", ResponseContentType="text/plain",
                  ResponseContentDisposition="inline", ResponseCacheControl="no-store")
check(o["ContentType"] == "text/plain" and o["ContentDisposition"] == "inline"
      and o["CacheControl"] == "no-store", "response-* overrides")
check(error_code(s3.get_object, Bucket="boto", Key="missing")[0] == "NoSuchKey", "NoSuchKey")
check(error_code(s3.get_object, Bucket="nope-nope", Key="x")[0] == "NoSuchBucket", "NoSuchBucket")

# ---- conditional put ----
s3.put_object(Bucket="boto", Key="cond", Body=b"1", IfNoneMatch="*")
check(error_code(s3.put_object, Bucket="boto", Key="cond", Body=b"2", IfNoneMatch="*")[0] == "PreconditionFailed", "If-None-Match put")
cur = s3.head_object(Bucket="boto", Key="cond")["ETag"]
s3.put_object(Bucket="boto", Key="cond", Body=b"3", IfMatch=cur)
check(error_code(s3.put_object, Bucket="boto", Key="cond", Body=b"4", IfMatch=cur)[0] == "PreconditionFailed", "If-Match put")
check(s3.get_object(Bucket="boto", Key="cond")["Body"].read() == b"3", "conditional put result")

# ---- Content-MD5 ----
import base64
good = base64.b64encode(hashlib.md5(b"digest me").digest()).decode()
s3.put_object(Bucket="boto", Key="md5", Body=b"digest me", ContentMD5=good)
bad = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
check(error_code(s3.put_object, Bucket="boto", Key="md5bad", Body=b"digest me", ContentMD5=bad)[0] == "BadDigest", "BadDigest")
check(error_code(s3.head_object, Bucket="boto", Key="md5bad")[1] == 404, "BadDigest stored nothing")

# ---- x-amz-checksum-*: verified on the way in, stored, returned ----
import zlib
data = os.urandom(123_456)
sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
r = s3.put_object(Bucket="boto", Key="sum", Body=data, ChecksumAlgorithm="SHA256")
check(r.get("ChecksumSHA256") == sha, f"SHA256 returned on PUT: {r.get('ChecksumSHA256')}")
h = s3.head_object(Bucket="boto", Key="sum", ChecksumMode="ENABLED")
check(h.get("ChecksumSHA256") == sha, "SHA256 returned on HEAD")
g = s3.get_object(Bucket="boto", Key="sum", ChecksumMode="ENABLED")
check(g["Body"].read() == data, "GET with checksum validation by boto3")
crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
r = s3.put_object(Bucket="boto", Key="sum32", Body=data, ChecksumCRC32=crc)
check(r.get("ChecksumCRC32") == crc, "CRC32 given in a header")
wrong = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big")).decode()
check(error_code(s3.put_object, Bucket="boto", Key="sumbad", Body=data, ChecksumCRC32=wrong)[0] == "BadDigest", "wrong CRC32 refused")
check(error_code(s3.head_object, Bucket="boto", Key="sumbad")[1] == 404, "wrong CRC32 stored nothing")

# ---- tagging ----
s3.put_object(Bucket="boto", Key="tagged", Body=b"t", Tagging="project=archipel&note=a%20b")
check(s3.get_object(Bucket="boto", Key="tagged")["TagCount"] == 2, "TagCount")
tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket="boto", Key="tagged")["TagSet"]}
check(tags == {"project": "archipel", "note": "a b"}, f"tags set at PUT: {tags}")
etag_before = s3.head_object(Bucket="boto", Key="tagged")["ETag"]
s3.put_object_tagging(Bucket="boto", Key="tagged", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
check(s3.get_object_tagging(Bucket="boto", Key="tagged")["TagSet"] == [{"Key": "k", "Value": "v"}], "tags replaced")
check(s3.head_object(Bucket="boto", Key="tagged")["ETag"] == etag_before, "tagging keeps the etag")
check(s3.get_object(Bucket="boto", Key="tagged")["Body"].read() == b"t", "tagging keeps the data")
s3.copy_object(Bucket="boto", Key="tagged-copy", CopySource={"Bucket": "boto", "Key": "tagged"})
check(s3.get_object_tagging(Bucket="boto", Key="tagged-copy")["TagSet"] == [{"Key": "k", "Value": "v"}], "copy keeps tags")
s3.delete_object_tagging(Bucket="boto", Key="tagged")
check(s3.get_object_tagging(Bucket="boto", Key="tagged")["TagSet"] == [], "tags deleted")
check(error_code(s3.put_object_tagging, Bucket="boto", Key="tagged",
                 Tagging={"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]})[0] == "InvalidTag", "duplicate tag keys")
check(error_code(s3.get_object_tagging, Bucket="boto", Key="untagged-missing")[0] == "NoSuchKey", "tagging a missing key")

# ---- copy ----
c = s3.copy_object(Bucket="boto", Key="copy1", CopySource={"Bucket": "boto", "Key": "dir/obj"})
check(c["CopyObjectResult"]["ETag"] == f'"{md5}"', "copy etag")
ch = s3.head_object(Bucket="boto", Key="copy1")
check(ch["Metadata"] == {"colour": "blue", "n": "1"} and ch["ContentType"] == "application/x-test", "copy keeps metadata")
s3.copy_object(Bucket="boto", Key="copy2", CopySource={"Bucket": "boto", "Key": "dir/obj"},
               MetadataDirective="REPLACE", Metadata={"new": "yes"}, ContentType="text/csv")
ch = s3.head_object(Bucket="boto", Key="copy2")
check(ch["Metadata"] == {"new": "yes"} and ch["ContentType"] == "text/csv", "copy replaces metadata")
check(error_code(s3.copy_object, Bucket="boto", Key="copy3", CopySource={"Bucket": "boto", "Key": "dir/obj"},
                 CopySourceIfMatch='"0000"')[0] == "PreconditionFailed", "conditional copy")
check(s3.get_object(Bucket="boto", Key="copy2")["Body"].read() == body, "copy body")

# ---- listings ----
for i in range(25):
    s3.put_object(Bucket="boto", Key=f"list/{i:03d}", Body=b"x")
s3.put_object(Bucket="boto", Key="list/sub/a b+c", Body=b"x")
keys, token = [], None
while True:
    kw = {"Bucket": "boto", "Prefix": "list/", "MaxKeys": 7}
    if token:
        kw["ContinuationToken"] = token
    page = s3.list_objects_v2(**kw)
    keys += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
check(len(keys) == 26 and keys == sorted(keys), "v2 pagination")
d = s3.list_objects_v2(Bucket="boto", Prefix="list/", Delimiter="/")
check([p["Prefix"] for p in d["CommonPrefixes"]] == ["list/sub/"] and d["KeyCount"] == 26, "v2 delimiter")
u = s3.list_objects_v2(Bucket="boto", Prefix="list/sub/", EncodingType="url")
# Asked for explicitly, the encoding reaches the caller as AWS sends it (space as '+').
check(u["Contents"][0]["Key"] == "list/sub/a+b%2Bc", f"encoding-type=url: {u}")
f = s3.list_objects_v2(Bucket="boto", Prefix="list/000", FetchOwner=True)
check(f["Contents"][0]["Owner"]["ID"], "fetch-owner")
sa = s3.list_objects_v2(Bucket="boto", Prefix="list/", StartAfter="list/020")
check([o["Key"] for o in sa["Contents"]][0] == "list/021", "start-after")
v1, marker = [], ""
while True:
    page = s3.list_objects(Bucket="boto", Prefix="list/", MaxKeys=10, Marker=marker)
    v1 += [o["Key"] for o in page.get("Contents", [])]
    if not page["IsTruncated"]:
        break
    marker = page["NextMarker"]
check(v1 == keys, "v1 pagination")
vers = s3.list_object_versions(Bucket="boto", Prefix="list/00")
check(len(vers["Versions"]) == 10 and all(v["IsLatest"] for v in vers["Versions"]), "list versions")

# ---- delete ----
r = s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": f"list/{i:03d}"} for i in range(25)] + [{"Key": "never"}]})
check(len(r["Deleted"]) == 26 and not r.get("Errors"), "delete_objects")
s3.delete_object(Bucket="boto", Key="list/sub/a b+c")
check(s3.list_objects_v2(Bucket="boto", Prefix="list/")["KeyCount"] == 0, "deleted")
s3.delete_object(Bucket="boto", Key="never-existed")  # idempotent

# ---- multipart ----
mp = s3.create_multipart_upload(Bucket="boto", Key="mp", ContentType="video/x", Metadata={"m": "1"})
uid = mp["UploadId"]
p1 = os.urandom(5 * 1024 * 1024)
e1 = s3.upload_part(Bucket="boto", Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
e2 = s3.upload_part_copy(Bucket="boto", Key="mp", UploadId=uid, PartNumber=2,
                         CopySource={"Bucket": "boto", "Key": "dir/obj"}, CopySourceRange="bytes=0-99999")["CopyPartResult"]["ETag"]
e3 = s3.upload_part(Bucket="boto", Key="mp", UploadId=uid, PartNumber=3, Body=b"tail")["ETag"]
parts = s3.list_parts(Bucket="boto", Key="mp", UploadId=uid)["Parts"]
check([p["PartNumber"] for p in parts] == [1, 2, 3] and parts[0]["Size"] == len(p1), "list_parts")
ups = s3.list_multipart_uploads(Bucket="boto")["Uploads"]
check([u["UploadId"] for u in ups] == [uid], "list_multipart_uploads")
check(error_code(s3.complete_multipart_upload, Bucket="boto", Key="mp", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"00"'}]})[0] == "InvalidPart", "InvalidPart")
check(error_code(s3.complete_multipart_upload, Bucket="boto", Key="mp", UploadId=uid,
                 MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}]})[0] == "EntityTooSmall", "EntityTooSmall")
# Part 3 was uploaded but is not listed: it is left out (and collected).
done = s3.complete_multipart_upload(Bucket="boto", Key="mp", UploadId=uid, MultipartUpload={
    "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
want = hashlib.md5(b"".join(bytes.fromhex(e.strip('"')) for e in (e1, e2))).hexdigest() + "-2"
check(done["ETag"] == f'"{want}"', "multipart etag")
g = s3.get_object(Bucket="boto", Key="mp")
check(g["Body"].read() == p1 + body[:100000] and g["ContentType"] == "video/x"
      and g["Metadata"] == {"m": "1"} and g["PartsCount"] == 2, "multipart object")
check(error_code(s3.upload_part, Bucket="boto", Key="mp", UploadId=uid, PartNumber=4, Body=b"x")[0] == "NoSuchUpload", "NoSuchUpload")
ab = s3.create_multipart_upload(Bucket="boto", Key="ab")["UploadId"]
s3.upload_part(Bucket="boto", Key="ab", UploadId=ab, PartNumber=1, Body=b"x")
s3.abort_multipart_upload(Bucket="boto", Key="ab", UploadId=ab)
check(not s3.list_multipart_uploads(Bucket="boto").get("Uploads"), "aborted")

# ---- presigned URLs, fetched with curl ----
url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "dir/obj"}, ExpiresIn=300)
out = curl(url)
check(out[:-4] == body and out.endswith(b"\n200"), "presigned GET")
purl = s3.generate_presigned_url("put_object", Params={"Bucket": "boto", "Key": "presigned"}, ExpiresIn=300)
subprocess.run(["curl", "-sf", "-X", "PUT", "--data-binary", "uploaded by curl", purl], check=True)
check(s3.get_object(Bucket="boto", Key="presigned")["Body"].read() == b"uploaded by curl", "presigned PUT")
short = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "dir/obj"}, ExpiresIn=1)
time.sleep(2)
out = curl(short)
check(out.endswith(b"\n403") and b"AccessDenied" in out, f"expired presigned URL: {out[-200:]!r}")
check(curl(EP + "/boto/dir/obj").endswith(b"\n403"), "anonymous GET refused")

# ---- CORS: rules, browser preflight, headers on matching requests ----
rule = {"AllowedOrigins": ["https://app.example.org"], "AllowedMethods": ["GET", "PUT"],
        "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600}
check(error_code(s3.get_bucket_cors, Bucket="boto")[0] == "NoSuchCORSConfiguration", "no CORS yet")
s3.put_bucket_cors(Bucket="boto", CORSConfiguration={"CORSRules": [rule]})
got = s3.get_bucket_cors(Bucket="boto")["CORSRules"][0]
check(got["AllowedOrigins"] == rule["AllowedOrigins"] and got["AllowedMethods"] == rule["AllowedMethods"]
      and got["MaxAgeSeconds"] == 600, f"CORS rules stored: {got}")
pre = subprocess.run(["curl", "-s", "-i", "-X", "OPTIONS", "-H", "Origin: https://app.example.org",
                      "-H", "Access-Control-Request-Method: PUT",
                      "-H", "Access-Control-Request-Headers: content-type, x-amz-date",
                      EP + "/boto/dir/obj"], capture_output=True, check=True).stdout.decode().lower()
check(pre.startswith("http/1.1 200") and "access-control-allow-origin: https://app.example.org" in pre
      and "access-control-max-age: 600" in pre and "put" in pre, f"preflight allowed: {pre}")
bad = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "OPTIONS",
                      "-H", "Origin: https://evil.example.com", "-H", "Access-Control-Request-Method: GET",
                      EP + "/boto/dir/obj"], capture_output=True, check=True).stdout
check(bad == b"403", f"preflight from another origin: {bad!r}")
url = s3.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "dir/obj"}, ExpiresIn=300)
hdrs = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-H", "Origin: https://app.example.org", url],
                      capture_output=True, check=True).stdout.decode().lower()
check("access-control-allow-origin: https://app.example.org" in hdrs and "access-control-expose-headers: etag" in hdrs,
      f"CORS headers on GET: {hdrs}")
s3.delete_bucket_cors(Bucket="boto")
check(error_code(s3.get_bucket_cors, Bucket="boto")[0] == "NoSuchCORSConfiguration", "CORS deleted")

# ---- public-read buckets: anonymous reads only ----
s3.put_bucket_acl(Bucket="boto", ACL="public-read")
check(any(g["Grantee"].get("URI", "").endswith("AllUsers") and g["Permission"] == "READ"
          for g in s3.get_bucket_acl(Bucket="boto")["Grants"]), "ACL shows AllUsers READ")
out = curl(EP + "/boto/dir/obj")
check(out[:-4] == body and out.endswith(b"\n200"), "anonymous GET of a public-read bucket")
check(curl("-X", "PUT", "--data-binary", "x", EP + "/boto/anon").endswith(b"\n403"), "anonymous PUT refused")
check(curl("-X", "DELETE", EP + "/boto/dir/obj").endswith(b"\n403"), "anonymous DELETE refused")
s3.put_bucket_acl(Bucket="boto", ACL="private")
check(curl(EP + "/boto/dir/obj").endswith(b"\n403"), "private again")

# ---- Expect: 100-continue on an empty body, then a non-empty one on the same connection ----
# botocore sends the expectation on every file-like PUT; a final answer without `100 Continue`
# to the empty one used to poison the pooled connection (boto/botocore#3755): the next
# response lost its headers (the ETag of an UploadPart).
import io
import logging


class Defects(logging.Handler):
    seen = []

    def emit(self, record):
        if "Failed to parse headers" in record.getMessage():
            Defects.seen.append(record.getMessage())


logging.getLogger("urllib3.connection").addHandler(Defects())
one = boto3.client("s3", endpoint_url=EP, region_name="us-east-1",
                   config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                 retries={"max_attempts": 1}, max_pool_connections=1))
up = one.create_multipart_upload(Bucket="boto", Key="expect/mp")["UploadId"]
parts = []
for n in range(1, 4):
    one.put_object(Bucket="boto", Key=f"expect/empty{n}", Body=io.BytesIO(b""))
    data = os.urandom(5 * 1024 * 1024 if n < 3 else 1000)
    r = one.upload_part(Bucket="boto", Key="expect/mp", UploadId=up, PartNumber=n, Body=io.BytesIO(data))
    check(r.get("ETag") == f'"{hashlib.md5(data).hexdigest()}"', f"part {n} ETag after an empty PUT: {r.get('ETag')}")
    parts.append({"PartNumber": n, "ETag": r["ETag"]})
    r = one.put_object(Bucket="boto", Key=f"expect/full{n}", Body=io.BytesIO(data[:4096]))
    check(r.get("ETag") == f'"{hashlib.md5(data[:4096]).hexdigest()}"', f"PUT ETag after an empty PUT {n}")
one.complete_multipart_upload(Bucket="boto", Key="expect/mp", UploadId=up, MultipartUpload={"Parts": parts})
check(not Defects.seen, f"every response parsed: {Defects.seen[:1]}")
check(one.head_object(Bucket="boto", Key="expect/empty1")["ContentLength"] == 0, "empty object stored")

# ---- DeleteBucket: a bucket holding only unfinished uploads is deleted with them ----
s3.create_bucket(Bucket="uploads-only")
up = s3.create_multipart_upload(Bucket="uploads-only", Key="big")["UploadId"]
s3.upload_part(Bucket="uploads-only", Key="big", UploadId=up, PartNumber=1, Body=b"x" * 1000)
s3.create_multipart_upload(Bucket="uploads-only", Key="other")
s3.delete_bucket(Bucket="uploads-only")
check("uploads-only" not in [b["Name"] for b in s3.list_buckets()["Buckets"]], "bucket with only uploads deleted")
check(error_code(s3.list_multipart_uploads, Bucket="uploads-only")[0] == "NoSuchBucket", "its uploads went with it")
# ... but a bucket with an object keeps both and says why.
s3.create_bucket(Bucket="obj-and-upload")
s3.put_object(Bucket="obj-and-upload", Key="o", Body=b"o")
up = s3.create_multipart_upload(Bucket="obj-and-upload", Key="u")["UploadId"]
try:
    s3.delete_bucket(Bucket="obj-and-upload")
    check(False, "a bucket with an object was deleted")
except ClientError as e:
    check(e.response["Error"]["Code"] == "BucketNotEmpty" and e.response["Error"].get("Message"), f"BucketNotEmpty: {e.response['Error']}")
check(len(s3.list_multipart_uploads(Bucket="obj-and-upload").get("Uploads", [])) == 1, "its upload stays")
s3.abort_multipart_upload(Bucket="obj-and-upload", Key="u", UploadId=up)
s3.delete_object(Bucket="obj-and-upload", Key="o")
s3.delete_bucket(Bucket="obj-and-upload")

# ---- bad credentials ----
bad = boto3.client("s3", endpoint_url=EP, region_name="us-east-1", config=cfg,
                   aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong")
check(error_code(bad.list_buckets)[0] == "SignatureDoesNotMatch", "SignatureDoesNotMatch")
unknown = boto3.client("s3", endpoint_url=EP, region_name="us-east-1", config=cfg,
                       aws_access_key_id="AKIDUNKNOWN", aws_secret_access_key="x")
check(error_code(unknown.list_buckets)[0] == "InvalidAccessKeyId", "InvalidAccessKeyId")

# ---- bucket not empty, then empty and gone; the server still serves ----
check(error_code(s3.delete_bucket, Bucket="boto")[0] == "BucketNotEmpty", "BucketNotEmpty")
for o in s3.list_objects_v2(Bucket="boto").get("Contents", []):
    s3.delete_object(Bucket="boto", Key=o["Key"])
s3.delete_bucket(Bucket="boto")
check("boto" not in [b["Name"] for b in s3.list_buckets()["Buckets"]], "bucket deleted")
print(f"boto3 suite: {checks} checks passed")
